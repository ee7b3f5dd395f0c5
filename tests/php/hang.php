<?php

declare(strict_types=1);

// Test worker: never answers; sleeps forever once a request arrives.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Worker;

$worker = Worker::create();
if ($worker->waitPayload() !== null) {
    while (true) {
        sleep(3600);
    }
}
