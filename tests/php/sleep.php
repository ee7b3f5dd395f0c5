<?php

declare(strict_types=1);

// Test worker: the body is a number of milliseconds (ASCII digits); sleeps that long, replies with its pid.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    usleep(1000 * max(0, (int)$request->body));
    $worker->respond(new Payload((string)getmypid()));
}
