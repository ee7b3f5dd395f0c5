<?php

/**
 * Test worker (gRPC, echo.v1.Echo/Ping only): counts pings in an application metric declared over
 * RPC with the kit's metrics client, and writes one stderr line per ping (log and trace-id tests).
 * The metric is declared on the first request: the RPC endpoint starts after the worker pools.
 * With argv[1] = "slowboot:<ms>" it sleeps before starting (readiness tests).
 */

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

use EchoV1\PingReply;
use EchoV1\PingRequest;
use EchoV1\SleepReply;
use EchoV1\SleepRequest;
use RRGrpc\GRPC\ContextInterface;
use RRGrpc\GRPC\Server;
use RRGrpc\Metrics\Collector;
use RRGrpc\Metrics\Metrics;
use RRGrpc\Worker\Worker;

final class CountingEcho
{
    private ?Metrics $metrics = null;

    public function Ping(ContextInterface $ctx, PingRequest $in): PingReply
    {
        if ($this->metrics === null) {
            $this->metrics = Metrics::create();
            $this->metrics->declare(
                'app_pings',
                Collector::counter()->withHelp('Pings by message')->withLabels('msg'),
            );
        }
        $this->metrics->add('app_pings', 1, [$in->getMsg()]);
        $traceparent = $ctx->getValue('Traceparent')[0] ?? '-';
        fwrite(STDERR, "ping {$in->getMsg()} traceparent={$traceparent}\n");
        return new PingReply(['msg' => $in->getMsg(), 'pid' => getmypid()]);
    }

    public function Sleep(ContextInterface $ctx, SleepRequest $in): SleepReply
    {
        usleep(1000 * max(0, (int)$in->getMs()));
        return new SleepReply(['pid' => getmypid(), 'slept_ms' => (int)$in->getMs()]);
    }
}

if (str_starts_with($argv[1] ?? '', 'slowboot:')) {
    usleep(1000 * (int)substr($argv[1], 9));
}
$server = new Server();
$server->registerService('echo.v1.Echo', new CountingEcho());
$server->serve(Worker::create());
