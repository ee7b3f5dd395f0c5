<?php

/**
 * The Goridge frame codec (PROTOCOL.md §1): owns the byte layout, the flag constants and the
 * byte-10 stream bits. Pure functions on strings; the relays do the I/O.
 */

declare(strict_types=1);

namespace RRGrpc\Goridge;

/**
 * One frame. Layout, little-endian throughout:
 *   byte 0      version 1 in the high nibble, header length in 32-bit words (3 + options) in the low one
 *   byte 1      flags (CONTROL, CODEC_*, ERROR)
 *   bytes 2..5  payload length (options excluded)
 *   bytes 6..9  CRC32 of bytes 0..5
 *   byte 10     stream bits (STREAM, STOP, PING, PONG); byte 11 is always 0
 *   then        the option words (uint32 each), then the payload
 */
final class Frame
{
    public const VERSION = 1;
    public const HEADER_SIZE = 12;
    public const MAX_OPTIONS = 10;

    // flags, byte 1
    public const CONTROL = 0x01;
    public const CODEC_RAW = 0x04;
    public const CODEC_JSON = 0x08;
    public const CODEC_MSGPACK = 0x10;
    public const CODEC_GOB = 0x20;
    public const ERROR = 0x40;
    public const CODEC_PROTO = 0x80;

    // stream bits, byte 10
    public const STREAM = 0x01;
    public const STOP = 0x02;
    public const PING = 0x04;
    public const PONG = 0x08;

    /**
     * @param list<int> $options
     */
    public function __construct(
        public string $payload = '',
        public int $flags = 0,
        public array $options = [],
        public int $byte10 = 0,
    ) {
    }

    public function hasFlag(int $flag): bool
    {
        return ($this->flags & $flag) === $flag;
    }

    public function hasStreamBit(int $bit): bool
    {
        return ($this->byte10 & $bit) === $bit;
    }

    /** The whole frame as bytes. */
    public function encode(): string
    {
        $count = \count($this->options);
        if ($count > self::MAX_OPTIONS) {
            throw new \InvalidArgumentException(
                \sprintf('a frame carries at most %d options, got %d', self::MAX_OPTIONS, $count),
            );
        }
        $head = \chr((self::VERSION << 4) | (3 + $count)) . \chr($this->flags & 0xFF)
            . \pack('V', \strlen($this->payload));
        $head .= \pack('V', \crc32($head)) . \chr($this->byte10 & 0xFF) . "\0";
        if ($count > 0) {
            $head .= \pack('V*', ...$this->options);
        }
        return $head . $this->payload;
    }

    /**
     * Check and decode the fixed 12-byte header.
     *
     * @return array{hl: int, flags: int, length: int, byte10: int} hl = header length in words
     * @throws RelayException on a short header, a header length outside 3..13 or a CRC mismatch
     */
    public static function decodeHeader(string $head): array
    {
        if (\strlen($head) < self::HEADER_SIZE) {
            throw new RelayException(
                \sprintf('short read: got %d of the %d header bytes', \strlen($head), self::HEADER_SIZE),
            );
        }
        /** @var array{1: int, 2: int} $lc */
        $lc = \unpack('V2', $head, 2);
        if (\crc32(\substr($head, 0, 6)) !== $lc[2]) {
            throw new RelayException('CRC mismatch in frame header ' . \bin2hex(\substr($head, 0, 12)));
        }
        $hl = \ord($head[0]) & 0x0F;
        if ($hl < 3 || $hl > 3 + self::MAX_OPTIONS) {
            throw new RelayException(\sprintf('header length %d words is outside 3..13', $hl));
        }
        return ['hl' => $hl, 'flags' => \ord($head[1]), 'length' => $lc[1], 'byte10' => \ord($head[10])];
    }

    /**
     * Decode one whole frame from the start of $bytes.
     *
     * @param int|null $used set to the number of bytes the frame occupied
     * @throws RelayException when the bytes are not a complete, valid frame
     */
    public static function decode(string $bytes, ?int &$used = null): self
    {
        $h = self::decodeHeader($bytes);
        $optSize = 4 * ($h['hl'] - 3);
        $end = self::HEADER_SIZE + $optSize + $h['length'];
        if (\strlen($bytes) < $end) {
            throw new RelayException(\sprintf('short read: frame needs %d bytes, got %d', $end, \strlen($bytes)));
        }
        $used = $end;
        return new self(
            \substr($bytes, self::HEADER_SIZE + $optSize, $h['length']),
            $h['flags'],
            self::decodeOptions(\substr($bytes, self::HEADER_SIZE, $optSize)),
            $h['byte10'],
        );
    }

    /**
     * @return list<int>
     */
    public static function decodeOptions(string $raw): array
    {
        return $raw === '' ? [] : \array_values(\unpack('V*', $raw));
    }
}
