<?php

/**
 * Test worker for the two-hop trace (host A, gRPC): echo.v1.Echo/Ping calls host B over HTTP
 * (MESH_B_URL) passing on the trace context it received (Traceparent, Tracestate, Baggage keys of
 * the gRPC context), and answers with B's reply body as msg.
 */

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';

use EchoV1\PingReply;
use EchoV1\PingRequest;
use RRGrpc\GRPC\ContextInterface;
use RRGrpc\GRPC\Server;
use RRGrpc\Worker\Worker;

final class MeshA
{
    public function Ping(ContextInterface $ctx, PingRequest $in): PingReply
    {
        $headers = [];
        foreach (['Traceparent', 'Tracestate', 'Baggage'] as $key) {
            $value = $ctx->getValue($key)[0] ?? null;
            if ($value !== null) {
                $headers[] = strtolower($key) . ': ' . $value;
            }
        }
        $url = getenv('MESH_B_URL') . '?msg=' . urlencode($in->getMsg());
        $body = file_get_contents($url, false, stream_context_create([
            'http' => ['method' => 'GET', 'header' => implode("\r\n", $headers), 'timeout' => 10],
        ]));
        if ($body === false) {
            throw new RuntimeException("call to host B failed: $url");
        }
        fwrite(STDERR, "called B: $body\n");
        return new PingReply(['msg' => $body, 'pid' => getmypid()]);
    }
}

$server = new Server();
$server->registerService('echo.v1.Echo', new MeshA());
$server->serve(Worker::create());
