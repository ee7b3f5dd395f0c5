<?php

/**
 * The example's implementation of greeter.v1.Greeter (proto/greeter/v1/greeter.proto).
 */

declare(strict_types=1);

namespace App;

use Greeter\V1\GreeterInterface;
use Greeter\V1\HelloReply;
use Greeter\V1\HelloRequest;
use RRGrpc\GRPC\ContextInterface;
use RRGrpc\GRPC\Exception\GRPCException;
use RRGrpc\GRPC\ResponseHeaders;
use RRGrpc\GRPC\StatusCode;

final class GreeterService implements GreeterInterface
{
    public function SayHello(ContextInterface $ctx, HelloRequest $in): HelloReply
    {
        $name = trim($in->getName());
        if ($name === '') {
            throw new GRPCException('name must not be empty', StatusCode::INVALID_ARGUMENT);
        }
        $ctx->getValue(ResponseHeaders::class)->set('x-worker-pid', (string)getmypid());
        return new HelloReply(['message' => "Hello $name"]);
    }
}
