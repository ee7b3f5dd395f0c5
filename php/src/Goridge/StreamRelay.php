<?php

/**
 * Owns the pipes relay (PROTOCOL.md §2.3): frames in on one stream (STDIN), out on another (STDOUT).
 */

declare(strict_types=1);

namespace RRGrpc\Goridge;

final class StreamRelay extends Relay
{
    /**
     * @param resource $in
     * @param resource $out
     */
    public function __construct(private mixed $in, private mixed $out)
    {
        if (!\is_resource($in) || !\is_resource($out)) {
            throw new \InvalidArgumentException('StreamRelay expects two open stream resources');
        }
    }

    protected function input(): mixed
    {
        return $this->in;
    }

    protected function output(): mixed
    {
        return $this->out;
    }

    public function isPipe(): bool
    {
        return true;
    }

    public function close(): void
    {
        // STDIN/STDOUT belong to the process; closing them is the interpreter's job at exit.
    }
}
