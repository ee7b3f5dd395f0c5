<?php

/**
 * The example's single PHP entry point: a gRPC worker (greeter.v1.Greeter, shared with
 * ../greeter) when RR_MODE is "grpc", the HTTP site otherwise. Started by `rr serve`.
 */

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';
rrgrpc_autoload_add('App\\', __DIR__ . '/../greeter/src');
rrgrpc_autoload_add('App\\Http\\', __DIR__ . '/src');

use App\GreeterService;
use App\Http\Site;
use Greeter\V1\GreeterInterface;
use RRGrpc\GRPC\Server;
use RRGrpc\Http\HttpWorker;
use RRGrpc\Worker\Worker;

if (getenv('RR_MODE') === 'grpc') {
    $server = new Server();
    $server->registerService(GreeterInterface::class, new GreeterService());
    $server->serve(Worker::create());
} else {
    (new Site())->serve(HttpWorker::create());
}
