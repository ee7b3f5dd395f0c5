<?php

declare(strict_types=1);

// Test worker: echoes; asked to stop, it never exits (a worker that ignores the stop command).

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    $worker->respond($request);
}
while (true) {
    sleep(3600);
}
