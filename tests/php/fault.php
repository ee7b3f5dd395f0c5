<?php

declare(strict_types=1);

// Test worker for the fault suite, for both RR_MODE=grpc and RR_MODE=http, on the raw kit Worker.
// The request (context and body) is searched for commands:
//   "sleep:N"    sleep N ms before answering      "exit-now"  exit(5) after reading the request
//   "print-now"  write text to STDOUT (not a frame) and wait for the server to react
// Environment: FAULT_EXIT_AFTER=N exits with 0 right after the Nth answer (a PHP memory guard);
// FAULT_LOG=path appends "<pid> <first 40 bytes of the body>" per request received;
// FAULT_BOOT_DELAY=path: while that file exists, a new worker sleeps the ms it holds before it starts.
// Answers: grpc, the request body unchanged (a PingRequest decodes as a PingReply);
// http, status 200 with "ok <pid>".

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

$delay = getenv('FAULT_BOOT_DELAY') ?: '';
if ($delay !== '' && is_file($delay)) {
    usleep(1000 * (int)file_get_contents($delay));
}
$worker = Worker::create();
$exitAfter = (int)(getenv('FAULT_EXIT_AFTER') ?: 0);
$log = getenv('FAULT_LOG') ?: '';
$http = getenv('RR_MODE') === 'http';
$served = 0;
while (($request = $worker->waitPayload()) !== null) {
    $all = $request->header . $request->body;
    if ($log !== '') {
        $marker = preg_match('/req-[0-9a-z-]+/', $all, $m) ? $m[0] : '-';
        file_put_contents($log, getmypid() . " $marker\n", FILE_APPEND | LOCK_EX);
    }
    if (preg_match('/sleep:(\d+)/', $all, $m)) {
        usleep(1000 * (int)$m[1]);
    }
    if (str_contains($all, 'exit-now')) {
        exit(5);
    }
    if (str_contains($all, 'print-now')) {
        fwrite(STDOUT, "debug output from PHP\n");
        sleep(30);
    }
    if ($http) {
        $worker->respond(new Payload('ok ' . getmypid(), '{"status":200,"headers":{"Content-Type":["text/plain"]}}'));
    } else {
        $worker->respond(new Payload($request->body, '{}'));
    }
    if ($exitAfter > 0 && ++$served >= $exitAfter) {
        exit(0);
    }
}
