<?php

/**
 * Owns the exception for worker-protocol violations (unknown control messages, malformed data frames).
 */

declare(strict_types=1);

namespace RRGrpc\Worker;

class WorkerException extends \RuntimeException
{
}
