<?php

/**
 * Owns a task built and not yet pushed: job name, payload, options and headers, immutable
 * (withHeader/withDelay/withPriority/withAutoAck return copies), as spiral/roadrunner-jobs' PreparedTask.
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

final class PreparedTask
{
    /** @param array<string, list<string>> $headers */
    public function __construct(
        private readonly string $name,
        private readonly string $payload,
        private Options $options = new Options(),
        private array $headers = [],
    ) {
    }

    public function getName(): string
    {
        return $this->name;
    }

    public function getPayload(): string
    {
        return $this->payload;
    }

    public function getOptions(): Options
    {
        return $this->options;
    }

    /** @return array<string, list<string>> */
    public function getHeaders(): array
    {
        return $this->headers;
    }

    public function withHeader(string $name, string|array $value): self
    {
        $self = clone $this;
        $self->headers[$name] = \array_values((array)$value);
        return $self;
    }

    public function withDelay(int $seconds): self
    {
        $self = clone $this;
        $self->options = $this->options->withDelay($seconds);
        return $self;
    }

    public function withPriority(int $priority): self
    {
        $self = clone $this;
        $self->options = $this->options->withPriority($priority);
        return $self;
    }

    public function withAutoAck(bool $autoAck = true): self
    {
        $self = clone $this;
        $self->options = $this->options->autoAck($autoAck);
        return $self;
    }
}
