<?php

/**
 * Owns the worker's protobuf codec for the HTTP context (PROTOCOL.md §5, proto/http/v1/http.proto):
 * decoding http.v1.Request and encoding http.v1.Response by hand, without the protobuf runtime.
 * Only what these messages use: varints and length-delimited fields; maps are repeated entries
 * (key = 1, value = 2) whose values are http.v1.HeaderValue (repeated bytes value = 1). Unknown
 * fields are skipped. The output is byte-for-byte what the generated classes produce.
 */

declare(strict_types=1);

namespace RRGrpc\Http;

final class ProtoCodec
{
    /** Request fields that are maps of HeaderValue, by field number. */
    private const MAPS = [5 => 'header', 6 => 'cookies', 10 => 'attributes'];
    /** Request string/bytes fields, by field number. */
    private const STRINGS = [1 => 'remote_addr', 2 => 'protocol', 3 => 'method', 4 => 'uri', 7 => 'raw_query', 9 => 'uploads'];

    /**
     * Decode an http.v1.Request.
     *
     * @return array{remote_addr: string, protocol: string, method: string, uri: string, raw_query: string,
     *     uploads: string, parsed: bool, header: array<string, list<string>>,
     *     cookies: array<string, list<string>>, attributes: array<string, list<string>>}
     * @throws \UnexpectedValueException on malformed input
     */
    public static function decodeRequest(string $data): array
    {
        $out = [
            'remote_addr' => '', 'protocol' => '', 'method' => '', 'uri' => '', 'raw_query' => '',
            'uploads' => '', 'parsed' => false, 'header' => [], 'cookies' => [], 'attributes' => [],
        ];
        $pos = 0;
        $end = \strlen($data);
        $len = 0;
        while ($pos < $end) {
            $tag = self::field($data, $pos, $end, $len);
            if (($tag & 7) === 2) {
                $field = $tag >> 3;
                if (isset(self::STRINGS[$field])) {
                    $out[self::STRINGS[$field]] = \substr($data, $pos, $len);
                } elseif (isset(self::MAPS[$field])) {
                    [$key, $values] = self::entry($data, $pos, $pos + $len);
                    $out[self::MAPS[$field]][$key] = $values;
                }
                $pos += $len;
            } elseif ($tag === 0x40) {
                $out['parsed'] = $len !== 0;
            }
        }
        return $out;
    }

    /**
     * Encode an http.v1.Response.
     *
     * @param array<string|int, string|int|float|bool|\Stringable|array<string|int|float|bool|\Stringable>> $headers
     */
    public static function encodeResponse(int $status, array $headers): string
    {
        $out = $status !== 0 ? "\x08" . self::encodeVarint($status) : '';
        foreach ($headers as $name => $values) {
            $value = '';
            foreach ((array) $values as $v) {
                $v = (string) $v;
                $value .= "\x0a" . self::encodeVarint(\strlen($v)) . $v;
            }
            $name = (string) $name;
            $entry = ($name !== '' ? "\x0a" . self::encodeVarint(\strlen($name)) . $name : '')
                . "\x12" . self::encodeVarint(\strlen($value)) . $value;
            $out .= "\x12" . self::encodeVarint(\strlen($entry)) . $entry;
        }
        return $out;
    }

    /**
     * One map entry: key (1, string) and value (2, HeaderValue, whose values are field 1).
     *
     * @return array{0: string, 1: list<string>}
     */
    private static function entry(string $data, int $pos, int $end): array
    {
        $key = '';
        $values = [];
        $len = 0;
        while ($pos < $end) {
            $tag = self::field($data, $pos, $end, $len);
            if ($tag === 0x0a) {
                $key = \substr($data, $pos, $len);
            } elseif ($tag === 0x12) {
                $values = []; // protobuf keeps the last value message of an entry
                $stop = $pos + $len;
                while ($pos < $stop) {
                    $inner = self::field($data, $pos, $stop, $len);
                    if ($inner === 0x0a) {
                        $values[] = \substr($data, $pos, $len);
                    }
                    $pos += ($inner & 7) === 2 ? $len : 0;
                }
                continue;
            }
            $pos += ($tag & 7) === 2 ? $len : 0;
        }
        return [$key, $values];
    }

    /**
     * Read the next tag. A length-delimited field leaves $pos at its bytes and $len = their length;
     * a varint field sets $len to its value; other wire types are skipped ($len = 0).
     */
    private static function field(string $data, int &$pos, int $end, int &$len): int
    {
        $tag = self::varint($data, $pos, $end);
        $wire = $tag & 7;
        if ($wire === 2) {
            $len = self::varint($data, $pos, $end);
            if ($len > $end - $pos) {
                throw new \UnexpectedValueException('protobuf: truncated field ' . ($tag >> 3));
            }
        } elseif ($wire === 0) {
            $len = self::varint($data, $pos, $end);
        } else {
            $size = match ($wire) {
                1 => 8,
                5 => 4,
                default => throw new \UnexpectedValueException('protobuf: unsupported wire type ' . $wire),
            };
            if ($size > $end - $pos) {
                throw new \UnexpectedValueException('protobuf: truncated field ' . ($tag >> 3));
            }
            $pos += $size;
            $len = 0;
        }
        return $tag;
    }

    private static function varint(string $data, int &$pos, int $end): int
    {
        if ($pos >= $end) {
            throw new \UnexpectedValueException('protobuf: truncated varint');
        }
        $byte = \ord($data[$pos++]);
        if ($byte < 0x80) {
            return $byte;
        }
        $value = $byte & 0x7f;
        $shift = 7;
        do {
            if ($pos >= $end || $shift > 63) {
                throw new \UnexpectedValueException('protobuf: malformed varint');
            }
            $byte = \ord($data[$pos++]);
            $value |= ($byte & 0x7f) << $shift;
            $shift += 7;
        } while ($byte >= 0x80);
        return $value;
    }

    private static function encodeVarint(int $value): string
    {
        if ($value >= 0 && $value < 0x80) {
            return \chr($value);
        }
        $out = '';
        // negative int64: ten bytes, two's complement (the sign bit shifted down logically)
        for ($i = 0; $i < 10; $i++) {
            $byte = $value & 0x7f;
            $value = ($value >> 7) & (\PHP_INT_MAX >> 6);
            if ($value === 0) {
                return $out . \chr($byte);
            }
            $out .= \chr($byte | 0x80);
        }
        return $out;
    }
}
