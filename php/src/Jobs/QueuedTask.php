<?php

/**
 * Owns what a push returns: the task as it was queued, with the id it was given.
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

final class QueuedTask extends Task
{
    public function getQueue(): string
    {
        return $this->pipeline;
    }
}
