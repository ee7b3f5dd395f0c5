<?php

/**
 * Owns the hand-written protobuf encoding of google.rpc.Status (code = 1, message = 2,
 * details = 3 repeated google.protobuf.Any {type_url = 1, value = 2}), so the kit needs no
 * generated google/rpc classes. Details are protobuf messages packed with the type URL
 * `type.googleapis.com/<full message name>`; a google.protobuf.Any is taken as already packed.
 */

declare(strict_types=1);

namespace RRGrpc\GRPC;

use Google\Protobuf\Any;
use Google\Protobuf\DescriptorPool;
use Google\Protobuf\Internal\Message;

final class Status
{
    public const TYPE_URL_PREFIX = 'type.googleapis.com/';

    private function __construct()
    {
    }

    /**
     * Serialized google.rpc.Status.
     *
     * @param list<Message> $details
     */
    public static function encode(int $code, string $message, array $details = []): string
    {
        $out = $code !== 0 ? self::key(1, 0) . self::varint($code) : '';
        if ($message !== '') {
            $out .= self::bytesField(2, $message);
        }
        foreach ($details as $detail) {
            [$typeUrl, $value] = self::pack($detail);
            $any = ($typeUrl !== '' ? self::bytesField(1, $typeUrl) : '') . ($value !== '' ? self::bytesField(2, $value) : '');
            $out .= self::bytesField(3, $any);
        }
        return $out;
    }

    /**
     * The type URL and serialized bytes of a detail message.
     *
     * @return array{0: string, 1: string}
     */
    public static function pack(Message $detail): array
    {
        if ($detail instanceof Any) {
            return [$detail->getTypeUrl(), $detail->getValue()];
        }
        $descriptor = DescriptorPool::getGeneratedPool()->getDescriptorByClassName(\get_class($detail));
        if ($descriptor === null) {
            throw new \InvalidArgumentException('no protobuf descriptor for detail class ' . \get_class($detail));
        }
        return [self::TYPE_URL_PREFIX . $descriptor->getFullName(), $detail->serializeToString()];
    }

    private static function bytesField(int $field, string $bytes): string
    {
        return self::key($field, 2) . self::varint(\strlen($bytes)) . $bytes;
    }

    private static function key(int $field, int $wireType): string
    {
        return self::varint(($field << 3) | $wireType);
    }

    /** Base-128 varint; negative numbers take ten bytes (two's complement), as protobuf int32 does. */
    private static function varint(int $value): string
    {
        $out = '';
        do {
            $byte = $value & 0x7F;
            $value = ($value >> 7) & 0x01FFFFFFFFFFFFFF; // logical shift right on 64-bit ints
            $out .= \chr($value !== 0 ? $byte | 0x80 : $byte);
        } while ($value !== 0);
        return $out;
    }
}
