<?php

declare(strict_types=1);

// Test worker: keeps ~8 MB more memory per request (never freed) and replies "ok".

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

ini_set('memory_limit', '-1');
$kept = [];
$worker = Worker::create();
while (($request = $worker->waitPayload()) !== null) {
    $kept[] = str_repeat(chr(count($kept) & 0xFF), 8 * 1024 * 1024);
    $worker->respond(new Payload('ok'));
}
