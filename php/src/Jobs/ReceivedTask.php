<?php

/**
 * Owns one task a consumer received (PROTOCOL.md §8a.2): what it carries (id, job name, pipeline,
 * queue, driver, headers, payload) and its single answer, with spiral/roadrunner-jobs' names:
 * complete() / fail($e, $requeue) (types 0 and 1), ack() (2), nack($message, $redelivery) (3),
 * requeue($message) (4); withDelay() and withHeader() shape the requeue. Only the first answer is sent.
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

final class ReceivedTask extends Task
{
    public const SUCCESS = 0;
    public const ERROR = 1;
    public const ACK = 2;
    public const NACK = 3;
    public const REQUEUE = 4;

    private ?int $completed = null;
    private int $delay = 0;

    /** @param array<string, list<string>> $headers */
    public function __construct(
        private readonly Worker $worker,
        string $id,
        private readonly string $driver,
        string $pipeline,
        string $name,
        private readonly string $queue,
        string $payload,
        array $headers = [],
    ) {
        parent::__construct($id, $pipeline, $name, $payload, $headers);
    }

    public function getQueue(): string
    {
        return $this->queue;
    }

    public function getDriver(): string
    {
        return $this->driver;
    }

    /** A copy whose requeue (fail with requeue, requeue()) carries this header. */
    public function withHeader(string $name, string|array $value): self
    {
        $self = clone $this;
        $self->headers[$name] = \array_values((array)$value);
        return $self;
    }

    public function withoutHeader(string $name): self
    {
        $self = clone $this;
        unset($self->headers[$name]);
        return $self;
    }

    /** A copy whose fail/nack/requeue asks for redelivery after $seconds. */
    public function withDelay(int $seconds): self
    {
        $self = clone $this;
        $self->delay = \max(0, $seconds);
        return $self;
    }

    public function complete(): void
    {
        $this->respond(self::SUCCESS);
    }

    public function fail(string|\Stringable|\Throwable $error, bool $requeue = false): void
    {
        $data = ['message' => (string)$error, 'requeue' => $requeue, 'delay_seconds' => $this->delay];
        if ($this->headers !== []) {
            $data['headers'] = $this->headers;
        }
        $this->respond(self::ERROR, $data);
    }

    public function ack(): void
    {
        $this->respond(self::ACK);
    }

    public function nack(string|\Stringable|\Throwable $message, bool $redelivery = false): void
    {
        $this->respond(self::NACK, [
            'message' => (string)$message,
            'requeue' => $redelivery,
            'delay_seconds' => $this->delay,
        ]);
    }

    public function requeue(string|\Stringable|\Throwable $message): void
    {
        $data = ['message' => (string)$message, 'delay_seconds' => $this->delay];
        if ($this->headers !== []) {
            $data['headers'] = $this->headers;
        }
        $this->respond(self::REQUEUE, $data);
    }

    public function isCompleted(): bool
    {
        return $this->completed !== null;
    }

    public function isSuccessful(): bool
    {
        return $this->completed === self::SUCCESS || $this->completed === self::ACK;
    }

    public function isFails(): bool
    {
        return \in_array($this->completed, [self::ERROR, self::NACK, self::REQUEUE], true);
    }

    /** @param array<string, mixed> $data */
    private function respond(int $type, array $data = []): void
    {
        if ($this->completed !== null) {
            return;
        }
        $body = \json_encode(['type' => $type, 'data' => $data], \JSON_THROW_ON_ERROR);
        $this->worker->respond(new Payload($body));
        $this->completed = $type;
    }
}
