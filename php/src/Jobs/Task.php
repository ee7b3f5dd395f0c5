<?php

/**
 * Owns what every queued or received task carries: id, pipeline, job name, payload, headers, and the
 * header accessors (hasHeader, getHeader, getHeaderLine), as spiral/roadrunner-jobs' task classes.
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

abstract class Task
{
    /** @param array<string, list<string>> $headers */
    public function __construct(
        protected readonly string $id,
        protected readonly string $pipeline,
        protected readonly string $name,
        protected readonly string $payload,
        protected array $headers = [],
    ) {
    }

    public function getId(): string
    {
        return $this->id;
    }

    public function getPipeline(): string
    {
        return $this->pipeline;
    }

    public function getName(): string
    {
        return $this->name;
    }

    public function getPayload(): string
    {
        return $this->payload;
    }

    /** @return array<string, list<string>> */
    public function getHeaders(): array
    {
        return $this->headers;
    }

    public function hasHeader(string $name): bool
    {
        return isset($this->headers[$name]) && $this->headers[$name] !== [];
    }

    /** @return list<string> */
    public function getHeader(string $name): array
    {
        return $this->headers[$name] ?? [];
    }

    public function getHeaderLine(string $name): string
    {
        return \implode(',', $this->getHeader($name));
    }
}
