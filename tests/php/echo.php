<?php

declare(strict_types=1);

// Test worker: replies with the request's context and body unchanged.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    $worker->respond($request);
}
