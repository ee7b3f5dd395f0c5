<?php

/**
 * Owns the failure of a jobs call: the server refused it (its text is kept, e.g. "no such pipeline,
 * requested: emails"), the RPC connection failed, or a task was answered twice.
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

class JobsException extends \RuntimeException
{
}
