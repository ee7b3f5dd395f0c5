<?php

/**
 * Owns the response-header collector of one call (sent as `headers` in the reply context, §4.3).
 */

declare(strict_types=1);

namespace RRGrpc\GRPC;

/**
 * @implements \IteratorAggregate<string, string>
 */
class ResponseHeaders implements \IteratorAggregate, \Countable
{
    /** @var array<string, string> */
    private array $values = [];

    /**
     * @param iterable<string, string> $values
     */
    public function __construct(iterable $values = [])
    {
        foreach ($values as $key => $value) {
            $this->set($key, $value);
        }
    }

    /** Set one entry; names are lower-cased as gRPC metadata names are. */
    public function set(string $key, string $value): void
    {
        $this->values[\strtolower($key)] = $value;
    }

    public function get(string $key, ?string $default = null): ?string
    {
        return $this->values[\strtolower($key)] ?? $default;
    }

    public function getIterator(): \Traversable
    {
        return new \ArrayIterator($this->values);
    }

    public function count(): int
    {
        return \count($this->values);
    }

    /** The JSON object as a string, `{}` when empty (never `[]`). */
    public function packHeaders(): string
    {
        return \json_encode(
            (object)$this->values,
            \JSON_UNESCAPED_SLASHES | \JSON_UNESCAPED_UNICODE | \JSON_INVALID_UTF8_SUBSTITUTE | \JSON_THROW_ON_ERROR,
        );
    }
}
