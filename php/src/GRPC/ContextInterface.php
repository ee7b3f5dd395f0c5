<?php

/**
 * Owns the call-context contract handed to every gRPC method: incoming metadata and user values.
 */

declare(strict_types=1);

namespace RRGrpc\GRPC;

interface ContextInterface
{
    /** A value by key: incoming metadata are lists of strings keyed by their lower-case names. */
    public function getValue(string $key): mixed;

    /** @return array<string, mixed> every value (incoming metadata and values added by withValue) */
    public function getValues(): array;

    /** A copy with one more value; response headers/trailers are shared with the original. */
    public function withValue(string $key, mixed $value): self;
}
