<?php

declare(strict_types=1);

// Test worker: implements echo.v1.Echo (proto/echo/v1/echo.proto) with the kit's gRPC server.

require __DIR__ . '/../../php/autoload.php';

use EchoV1\BigReply;
use EchoV1\BigRequest;
use EchoV1\EchoInterface;
use EchoV1\FailDetail;
use EchoV1\FailReply;
use EchoV1\FailRequest;
use EchoV1\MetaReply;
use EchoV1\MetaRequest;
use EchoV1\PingReply;
use EchoV1\PingRequest;
use EchoV1\SleepReply;
use EchoV1\SleepRequest;
use EchoV1\Values;
use RRGrpc\GRPC\Context;
use RRGrpc\GRPC\ContextInterface;
use RRGrpc\GRPC\Exception\GRPCException;
use RRGrpc\GRPC\ResponseHeaders;
use RRGrpc\GRPC\ResponseTrailers;
use RRGrpc\GRPC\Server;
use RRGrpc\GRPC\StatusCode;
use RRGrpc\Worker\Worker;

final class EchoService implements EchoInterface
{
    private int $counter = 0;

    public function Ping(ContextInterface $ctx, PingRequest $in): PingReply
    {
        return new PingReply(['msg' => $in->getMsg(), 'counter' => ++$this->counter, 'pid' => getmypid()]);
    }

    public function Meta(ContextInterface $ctx, MetaRequest $in): MetaReply
    {
        $metadata = [];
        foreach ($ctx->getValues() as $key => $values) {
            if (is_array($values)) {
                $metadata[$key] = new Values(['values' => array_map('strval', $values)]);
            }
        }
        $headers = $ctx->getValue(ResponseHeaders::class);
        $trailers = $ctx->getValue(ResponseTrailers::class);
        $headers->set('x-echo-header', 'h-' . $in->getMsg());
        if ($in->getMode() === 'plain') {
            $headers->set('x-echo-pid', (string)getmypid());
        } else {
            $trailers->set('x-echo-trailer', 't-' . $in->getMsg());
        }
        if ($in->getMode() === 'fail') {
            throw new GRPCException('meta failed on purpose', StatusCode::FAILED_PRECONDITION);
        }
        $timeout = $ctx instanceof Context ? $ctx->getTimeout() : null;
        return new MetaReply([
            'msg' => $in->getMsg(),
            'pid' => getmypid(),
            'metadata' => $metadata,
            'mode' => $in->getMode(),
            'timeout_ms' => $timeout === null ? 0 : (int)round($timeout * 1000),
        ]);
    }

    public function Fail(ContextInterface $ctx, FailRequest $in): FailReply
    {
        if ($in->getKind() === 'runtime') {
            throw new RuntimeException($in->getMessage());
        }
        $details = [];
        if ($in->getWithDetails()) {
            $details[] = new FailDetail([
                'reason' => 'ECHO_FAIL',
                'domain' => 'echo.roadrunner.test',
                'metadata' => ['code' => (string)$in->getCode(), 'pid' => (string)getmypid()],
            ]);
        }
        throw new GRPCException($in->getMessage(), $in->getCode(), $details);
    }

    public function Big(ContextInterface $ctx, BigRequest $in): BigReply
    {
        $size = max(0, (int)$in->getSize());
        $payload = substr(str_repeat('0123456789abcdef', intdiv($size, 16) + 1), 0, $size);
        return new BigReply(['pid' => getmypid(), 'payload' => $payload]);
    }

    public function Sleep(ContextInterface $ctx, SleepRequest $in): SleepReply
    {
        $ms = max(0, (int)$in->getMs());
        usleep(1000 * $ms);
        return new SleepReply(['pid' => getmypid(), 'slept_ms' => $ms]);
    }
}

ini_set('memory_limit', '512M');
$server = new Server();
$server->registerService(EchoInterface::class, new EchoService());
$server->serve(Worker::create());
