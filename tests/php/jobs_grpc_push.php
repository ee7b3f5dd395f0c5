<?php

/**
 * Test worker for a trace that enters by gRPC: with RR_MODE=grpc, echo.v1.Echo/Ping pushes a job
 * "ok" (payload = msg) to pipeline "p" carrying the call's Traceparent, and answers with the job id;
 * with RR_MODE=jobs it is tests/php/jobs_consumer.php.
 */

declare(strict_types=1);

if (getenv('RR_MODE') === 'jobs') {
    require __DIR__ . '/jobs_consumer.php';
    return;
}

require __DIR__ . '/../../php/autoload.php';

use EchoV1\PingReply;
use EchoV1\PingRequest;
use RRGrpc\GRPC\ContextInterface;
use RRGrpc\GRPC\Server;
use RRGrpc\Jobs\Jobs;
use RRGrpc\Worker\Worker;

final class PushOnPing
{
    public function __construct(private readonly \RRGrpc\Jobs\Queue $queue)
    {
    }

    public function Ping(ContextInterface $ctx, PingRequest $in): PingReply
    {
        $task = $this->queue->create('ok', $in->getMsg());
        $traceparent = $ctx->getValue('Traceparent')[0] ?? null;
        if ($traceparent !== null) {
            $task = $task->withHeader('traceparent', $traceparent);
        }
        return new PingReply(['msg' => $this->queue->dispatch($task)->getId(), 'pid' => getmypid()]);
    }
}

$server = new Server();
$server->registerService('echo.v1.Echo', new PushOnPing((new Jobs())->connect('p')));
$server->serve(Worker::create());
