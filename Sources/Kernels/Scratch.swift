import Synchronization

/// A 64-byte aligned scratch buffer owned by one worker, grown on demand and reused.
@usableFromInline
final class Scratch<Element> {
    @usableFromInline var pointer: UnsafeMutablePointer<Element>
    @usableFromInline var capacity: Int

    @usableFromInline init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = Self.allocate(self.capacity)
    }

    @usableFromInline func reserve(_ count: Int) -> UnsafeMutablePointer<Element> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = Self.allocate(count)
        }
        return pointer
    }

    private static func allocate(_ n: Int) -> UnsafeMutablePointer<Element> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Element>.stride, alignment: 64)
        return raw.bindMemory(to: Element.self, capacity: n)
    }

    deinit { pointer.deallocate() }
}

/// Scratch buffers kept between calls: a GEMM called once per image per layer would otherwise
/// map and fault in fresh pages for its packed panels every time.
enum ScratchPool {
    private static let free = Mutex<[Scratch<UInt8>]>([])

    /// A buffer of at least `bytes` bytes, reused when one is free.
    static func take(_ bytes: Int) -> Scratch<UInt8> {
        let reused: Scratch<UInt8>? = free.withLock { list in
            if let i = list.lastIndex(where: { $0.capacity >= bytes }) { return list.remove(at: i) }
            return list.popLast()
        }
        let s = reused ?? Scratch<UInt8>(capacity: bytes)
        _ = s.reserve(bytes)
        return s
    }

    /// Returns buffers for reuse; at most 32 are kept.
    static func give(_ buffers: [Scratch<UInt8>]) {
        free.withLock { list in
            for b in buffers where list.count < 32 { list.append(b) }
        }
    }
}
