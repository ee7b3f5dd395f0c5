<?php

/**
 * Owns the failure of a metrics call: the server refused it (its text is kept, e.g.
 * "undefined collector: app_requests") or the RPC connection failed.
 */

declare(strict_types=1);

namespace RRGrpc\Metrics;

final class MetricsException extends \RuntimeException
{
}
