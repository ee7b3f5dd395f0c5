<?php

declare(strict_types=1);

// Test helper (not a worker): frame codec and Worker output probe for tests/unit/test_php_kit.py.
// Reads one JSON object per line on STDIN and prints one line of hex per request on STDOUT:
//   {"op":"encode","payload":"<hex>","flags":N,"options":[...],"byte10":N}  -> Frame::encode()
//   {"op":"roundtrip","hex":"<frame hex>"}                                  -> decode, re-encode
//   {"op":"respond","header":"<hex>","body":"<hex>","codec":N,"eos":bool}   -> Worker::respond()
//   {"op":"error","message":"..."} / {"op":"stop"} / {"op":"end_stream"}   -> Worker::error/stop/endStream
//   {"op":"status","code":N,"message":"..."}                                -> Status::encode() (no details)
// A failure prints "error: <message>" instead of hex.

require __DIR__ . '/../../php/autoload.php';

use RRGrpc\Goridge\Frame;
use RRGrpc\Goridge\StreamRelay;
use RRGrpc\GRPC\Status;
use RRGrpc\Worker\Payload;
use RRGrpc\Worker\Worker;

/** Run $op against a Worker whose relay writes into memory; return what it wrote. */
function worker_output(callable $op): string
{
    $out = fopen('php://memory', 'w+b');
    $in = fopen('php://memory', 'rb');
    $op(new Worker(new StreamRelay($in, $out), false));
    rewind($out);
    return (string)stream_get_contents($out);
}

while (($line = fgets(STDIN)) !== false) {
    try {
        $req = json_decode($line, true, 16, JSON_THROW_ON_ERROR);
        $bytes = match ($req['op']) {
            'encode' => (new Frame(
                hex2bin($req['payload'] ?? ''),
                $req['flags'] ?? 0,
                $req['options'] ?? [],
                $req['byte10'] ?? 0,
            ))->encode(),
            'roundtrip' => Frame::decode(hex2bin($req['hex']))->encode(),
            'respond' => worker_output(static fn (Worker $w) => $w->respond(
                new Payload(hex2bin($req['body'] ?? ''), hex2bin($req['header'] ?? ''), $req['eos'] ?? true),
                $req['codec'] ?? 0,
            )),
            'error' => worker_output(static fn (Worker $w) => $w->error($req['message'])),
            'stop' => worker_output(static fn (Worker $w) => $w->stop()),
            'end_stream' => worker_output(static fn (Worker $w) => $w->endStream()),
            'status' => Status::encode($req['code'], $req['message']),
        };
        fwrite(STDOUT, bin2hex($bytes) . "\n");
    } catch (Throwable $e) {
        fwrite(STDOUT, 'error: ' . str_replace("\n", ' ', $e->getMessage()) . "\n");
    }
}
