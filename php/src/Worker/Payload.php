<?php

/**
 * Owns the worker payload value: the context ("header" in the PHP API) and the body of one message.
 */

declare(strict_types=1);

namespace RRGrpc\Worker;

final class Payload
{
    /**
     * @param string $body   the body (gRPC: protobuf message bytes)
     * @param string $header the context (gRPC: JSON)
     * @param bool   $eos    end of stream: false marks a streamed frame with more to follow
     * @param int    $flags  frame flags as received (codec bits set by the server)
     */
    public function __construct(
        public string $body = '',
        public string $header = '',
        public bool $eos = true,
        public int $flags = 0,
    ) {
    }
}
