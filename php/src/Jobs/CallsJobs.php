<?php

/**
 * Owns how the producer classes call the jobs RPC: protobuf codec, any failure as a JobsException
 * carrying the server's (or the connection's) message.
 */

declare(strict_types=1);

namespace RRGrpc\Jobs;

use RRGrpc\RPC\RPC;

trait CallsJobs
{
    private readonly RPC $rpc;

    private function call(string $method, \Google\Protobuf\Internal\Message $message, ?string $result = null): mixed
    {
        try {
            return $this->rpc->callProto($method, $message, $result);
        } catch (\Throwable $e) {
            throw new JobsException($e->getMessage(), (int)$e->getCode(), $e);
        }
    }
}
