<?php

declare(strict_types=1);

// Test worker: sleeps $argv[1] milliseconds (default 300) before creating the worker, then echoes.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

usleep(1000 * (int)($argv[1] ?? 300));
$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    $worker->respond($request);
}
