<?php

/**
 * Owns the per-task options of a push (jobs.v1.Options): priority (0 = the pipeline's), delay in
 * seconds, auto-ack. Immutable, with spiral/roadrunner-jobs' with*() / get*() names.
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

final class Options
{
    public const DEFAULT_PRIORITY = 10;
    public const DEFAULT_DELAY = 0;
    public const DEFAULT_AUTO_ACK = false;

    public function __construct(
        private int $delay = self::DEFAULT_DELAY,
        private int $priority = self::DEFAULT_PRIORITY,
        private bool $autoAck = self::DEFAULT_AUTO_ACK,
    ) {
    }

    public function getDelay(): int
    {
        return $this->delay;
    }

    public function getPriority(): int
    {
        return $this->priority;
    }

    public function getAutoAck(): bool
    {
        return $this->autoAck;
    }

    public function withDelay(int $seconds): self
    {
        $self = clone $this;
        $self->delay = \max(0, $seconds);
        return $self;
    }

    public function withPriority(int $priority): self
    {
        $self = clone $this;
        $self->priority = \max(0, $priority);
        return $self;
    }

    public function autoAck(bool $autoAck = true): self
    {
        $self = clone $this;
        $self->autoAck = $autoAck;
        return $self;
    }
}
