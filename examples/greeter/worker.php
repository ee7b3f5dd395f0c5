<?php

/**
 * The example's PHP worker: serves greeter.v1.Greeter with the rrgrpc PHP kit (started by `rr serve`).
 */

declare(strict_types=1);

require __DIR__ . '/../../php/autoload.php';
rrgrpc_autoload_add('App\\', __DIR__ . '/src');

use App\GreeterService;
use Greeter\V1\GreeterInterface;
use RRGrpc\GRPC\Server;
use RRGrpc\Worker\Worker;

$server = new Server();
$server->registerService(GreeterInterface::class, new GreeterService());
$server->serve(Worker::create());
