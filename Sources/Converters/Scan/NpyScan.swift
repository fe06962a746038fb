import Foundation
import Runtime

/// `.npy` files: an array of Python objects (`dtype('O')`, alone or as a field) is stored as a
/// pickle after the header, which `np.load(allow_pickle=True)` unpickles. Any other dtype is
/// plain data.
enum NpyScan {
    static func scan(_ bytes: Data, part: String?, into c: inout ScanCollector, limits: ReaderLimits) {
        var cursor = ByteCursor(bytes)
        guard cursor.skip(6), let major = cursor.readInteger(UInt8.self, endianness: .little), cursor.skip(1) else {
            return c.fail("npy: file ends inside the version", in: part)
        }
        let length: Int
        switch major {
        case 1:
            guard let n = cursor.readInteger(UInt16.self, endianness: .little) else { return c.fail("npy: file ends inside the header length", in: part) }
            length = Int(n)
        case 2, 3:
            guard let n = cursor.readInteger(UInt32.self, endianness: .little) else { return c.fail("npy: file ends inside the header length", in: part) }
            length = Int(n)
        default:
            return c.fail("npy: format version \(major) (NumPy writes 1, 2, 3)", in: part)
        }
        guard length <= NpyLimits().maxHeaderBytes, let header = cursor.readBytes(length) else {
            return c.fail("npy: a header of \(length) bytes is over the limit or runs past the end", in: part)
        }
        let text = String(decoding: header, as: UTF8.self)
        guard text.hasPrefix("{"), text.contains("descr"), text.contains("shape") else {
            return c.fail("npy: the header is not NumPy's dict of descr, fortran_order and shape", in: part)
        }
        guard let descr = objectType(in: text) else { return }
        c.add(.objectArray, "numpy array of Python objects (dtype \(descr))", allowed: false,
              at: ScanLocation(part: part, offset: 0), detail: "np.load(allow_pickle=True) unpickles the data")
        let dataStart = cursor.offset
        var walk = PickleWalker.scan(cursor.readBytes(cursor.remaining) ?? Data(), limits: limits)
        for i in walk.events.indices { walk.events[i].offset += dataStart }
        c.add(walk, in: part)
    }

    /// The object type code in a header's descr (`'|O'`, `'O'`, a structured field `('a', 'O')`), if any.
    static func objectType(in header: String) -> String? {
        guard let re = try? NSRegularExpression(pattern: "['\"][<>|=]?O[0-9]*['\"]") else { return nil }
        guard let m = re.firstMatch(in: header, range: NSRange(header.startIndex..., in: header)),
              let r = Range(m.range, in: header) else { return nil }
        return String(header[r])
    }
}
