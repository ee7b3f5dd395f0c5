<?php

/**
 * Owns the call context of one gRPC request: the incoming metadata from the request context JSON
 * (PROTOCOL.md §4.2, every value a list of strings), user values, the response header and trailer
 * collectors, and the remaining deadline when the call carries `grpc-timeout`.
 */

declare(strict_types=1);

namespace RRGrpc\GRPC;

final class Context implements ContextInterface
{
    /** Metadata key carrying the caller's remaining budget (gRPC timeout syntax, e.g. "1500m"). */
    public const TIMEOUT_KEY = 'grpc-timeout';

    private ResponseHeaders $headers;
    private ResponseTrailers $trailers;
    private ?float $deadline;

    /**
     * @param array<string, mixed> $values incoming metadata (name => list of strings) and other values
     * @param float|null $now the time the call arrived (microtime(true)); defaults to now
     */
    public function __construct(private array $values = [], ?float $now = null)
    {
        $this->headers = new ResponseHeaders();
        $this->trailers = new ResponseTrailers();
        $timeout = self::parseTimeout($this->first(self::TIMEOUT_KEY));
        $this->deadline = $timeout === null ? null : ($now ?? \microtime(true)) + $timeout;
    }

    public function getValue(string $key): mixed
    {
        return match ($key) {
            ResponseHeaders::class => $this->headers,
            ResponseTrailers::class => $this->trailers,
            default => $this->values[$key] ?? null,
        };
    }

    public function getValues(): array
    {
        return $this->values;
    }

    public function withValue(string $key, mixed $value): self
    {
        $copy = clone $this; // the header/trailer collectors stay shared: they belong to the call
        $copy->values[$key] = $value;
        return $copy;
    }

    /** The first value of an incoming metadata entry, or null. */
    public function first(string $key): ?string
    {
        $value = $this->values[\strtolower($key)] ?? $this->values[$key] ?? null;
        if (\is_array($value)) {
            $value = $value[0] ?? null;
        }
        return \is_scalar($value) ? (string)$value : null;
    }

    public function setHeader(string $key, string $value): void
    {
        $this->headers->set($key, $value);
    }

    public function setTrailer(string $key, string $value): void
    {
        $this->trailers->set($key, $value);
    }

    public function getHeaders(): ResponseHeaders
    {
        return $this->headers;
    }

    public function getTrailers(): ResponseTrailers
    {
        return $this->trailers;
    }

    /** Absolute deadline of the call (unix time, seconds) or null when the caller set none. */
    public function getDeadline(): ?float
    {
        return $this->deadline;
    }

    /** Seconds left before the deadline (never negative), or null when the caller set no deadline. */
    public function getTimeout(): ?float
    {
        return $this->deadline === null ? null : \max(0.0, $this->deadline - \microtime(true));
    }

    /**
     * Parse a gRPC timeout value: digits followed by a unit H, M, S, m (ms), u (µs) or n (ns).
     *
     * @return float|null seconds, or null when $value is not a valid timeout
     */
    public static function parseTimeout(?string $value): ?float
    {
        if ($value === null || !\preg_match('/^(\d{1,8})([HMSmun])$/', \trim($value), $m)) {
            return null;
        }
        $scale = ['H' => 3600.0, 'M' => 60.0, 'S' => 1.0, 'm' => 1e-3, 'u' => 1e-6, 'n' => 1e-9][$m[2]];
        return (int)$m[1] * $scale;
    }
}
