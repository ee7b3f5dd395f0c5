<?php

declare(strict_types=1);

// Test worker: answers every request with an ERROR frame "boom: <body>" and stays alive.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    $worker->error('boom: ' . $request->body);
}
