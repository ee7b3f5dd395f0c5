<?php

declare(strict_types=1);

// Cross-check of RRGrpc\Http\ProtoCodec against the generated http.v1 classes (protobuf runtime).
// Reads a JSON object from stdin:
//   {"requests": [hex, ...], "responses": [{"status": int, "headers": {name: [values]}}, ...]}
// and prints, for each request, both decodings; for each response, both encodings (hex).

require __DIR__ . '/../../php/autoload.php';

use Http\V1\HeaderValue;
use Http\V1\Request;
use Http\V1\Response;
use RRGrpc\Http\ProtoCodec;

function lists(iterable $map): array
{
    $out = [];
    foreach ($map as $name => $value) {
        $out[(string) $name] = array_map('bin2hex', iterator_to_array($value->getValue()));
    }
    return $out;
}

function hexed(array $decoded): array
{
    foreach (['header', 'cookies', 'attributes'] as $map) {
        $decoded[$map] = array_map(static fn (array $v) => array_map('bin2hex', $v), $decoded[$map]);
    }
    return $decoded;
}

$input = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$out = ['requests' => [], 'responses' => []];
foreach ($input['requests'] as $hex) {
    $bytes = hex2bin($hex);
    $msg = new Request();
    $msg->mergeFromString($bytes);
    $out['requests'][] = [
        'generated' => [
            'remote_addr' => $msg->getRemoteAddr(), 'protocol' => $msg->getProtocol(), 'method' => $msg->getMethod(),
            'uri' => $msg->getUri(), 'raw_query' => $msg->getRawQuery(), 'uploads' => $msg->getUploads(),
            'parsed' => $msg->getParsed(), 'header' => lists($msg->getHeader()), 'cookies' => lists($msg->getCookies()),
            'attributes' => lists($msg->getAttributes()),
        ],
        'codec' => hexed(ProtoCodec::decodeRequest($bytes)),
    ];
}
foreach ($input['responses'] as $case) {
    $msg = new Response();
    $msg->setStatus($case['status']);
    $map = [];
    foreach ($case['headers'] as $name => $values) {
        $hv = new HeaderValue();
        $hv->setValue(array_map('strval', $values));
        $map[(string) $name] = $hv;
    }
    $msg->setHeaders($map);
    $out['responses'][] = [
        'generated' => bin2hex($msg->serializeToString()),
        'codec' => bin2hex(ProtoCodec::encodeResponse($case['status'], $case['headers'])),
    ];
}
echo json_encode($out, JSON_THROW_ON_ERROR);
