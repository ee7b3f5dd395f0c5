<?php

declare(strict_types=1);

// Test worker: writes "stderr.php <pid> request <n>" to STDERR for every request, then echoes it.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$count = 0;
$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    fwrite(STDERR, sprintf("stderr.php %d request %d\n", getmypid(), ++$count));
    $worker->respond($request);
}
