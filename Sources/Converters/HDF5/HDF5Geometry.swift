import Foundation
import Runtime

/// Where an HDF5 file's data starts in its bytes and how wide its addresses ("offsets") and
/// lengths are: what every bounds-checked read of the file needs. Comes from the superblock
/// (HDF5 File Format Specification 3.0, section II.A), which libhdf5 looks for at byte 0 and
/// then at 512, 1024, 2048, … ; every address in the file is relative to where it is found.
struct HDF5Geometry {
    let image: Data
    /// Absolute image offset that file addresses are relative to (the user block size).
    let base: Int
    /// Bytes of a file address and of a length: 2, 4 or 8 each (8 in every file h5py writes).
    let offsetSize: Int
    let lengthSize: Int

    /// The all-ones address that means "none".
    var undefinedAddress: UInt64 { offsetSize == 8 ? .max : (UInt64(1) << UInt64(8 * offsetSize)) - 1 }

    /// Bytes of the file after the user block: no address or length can go past them.
    var fileSize: Int { image.count - base }

    /// Absolute image offset of a file address, if the address lies inside the image.
    func offset(of address: UInt64) -> Int? {
        guard address < UInt64(Int.max), Int(address) <= fileSize else { return nil }
        return base + Int(address)
    }

    /// A cursor over `length` bytes at file address `address`.
    func cursor(at address: UInt64, length: Int, what: @autoclosure () -> String) throws -> ByteCursor {
        var c = ByteCursor(image)
        guard length >= 0, let start = offset(of: address), c.seek(toOffset: start), let slice = c.readSlice(length) else {
            throw ClipSafetyError.malformed("HDF5: \(what()) at address \(address) lies outside the file")
        }
        return slice
    }

    /// True when `length` bytes at `address` lie inside the file.
    func contains(_ address: UInt64, length: UInt64) -> Bool {
        address <= UInt64(fileSize) && length <= UInt64(fileSize) - address
    }

    func readAddress(_ c: inout ByteCursor) -> UInt64? { c.readUnsigned(width: offsetSize) }
    func readLength(_ c: inout ByteCursor) -> UInt64? { c.readUnsigned(width: lengthSize) }
}

extension ByteCursor {
    /// A little-endian unsigned integer of `width` bytes (1 to 8).
    mutating func readUnsigned(width: Int) -> UInt64? {
        guard width >= 1, width <= 8, let bytes = readBytes(width) else { return nil }
        return bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}

/// The superblock's facts: the file's geometry, the root group's object header and what else
/// libhdf5 reads when it opens the file.
struct HDF5Superblock {
    let geometry: HDF5Geometry
    let rootHeader: UInt64
    /// The root group's cached symbol table (B-tree, local heap) in a version 0/1 superblock.
    let rootSymbolTable: (btree: UInt64, heap: UInt64)?
    /// The superblock extension's object header (versions 2 and 3), if any.
    let extensionHeader: UInt64?
    /// A group's symbol node holds up to 2 × groupLeafK links.
    let groupLeafK: Int

    private static let signature = Data([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])

    /// Finds and parses the superblock where libhdf5 would look for it.
    init(image: Data) throws {
        var at = 0
        while at < image.count - 8 {
            if image.dropFirst(at).prefix(8).elementsEqual(Self.signature) {
                try self.init(image: image, at: at)
                return
            }
            at = at == 0 ? 512 : at * 2
        }
        throw ClipSafetyError.malformed("HDF5: no superblock (the HDF5 signature is not at 0, 512, 1024, …)")
    }

    private init(image: Data, at: Int) throws {
        var c = ByteCursor(image)
        _ = c.seek(toOffset: at + 8)
        guard let version = c.readInteger(UInt8.self, endianness: .little) else { throw Self.cut }
        switch version {
        case 0, 1: try self.init(version01: c, image: image, at: at)
        case 2, 3: try self.init(version23: c, image: image, at: at)
        default: throw ClipSafetyError.malformed("HDF5: unknown superblock version \(version)")
        }
    }

    private static let cut = ClipSafetyError.truncated("HDF5: the superblock is cut short")

    /// Checks address and length widths: libhdf5 accepts 2, 4 and 8 (and 16/32, never written).
    private static func sizes(_ offsets: UInt8?, _ lengths: UInt8?) throws -> (Int, Int) {
        guard let offsets, let lengths else { throw cut }
        guard [2, 4, 8].contains(offsets), [2, 4, 8].contains(lengths) else {
            throw ClipSafetyError.unsupported("HDF5: \(offsets)-byte addresses and \(lengths)-byte lengths (2, 4 and 8 are read)")
        }
        return (Int(offsets), Int(lengths))
    }

    /// Versions 0 and 1: sizes, K values, four addresses, then the root group's symbol table entry.
    private init(version01 c: ByteCursor, image: Data, at: Int) throws {
        var c = c
        guard c.skip(4) else { throw Self.cut }
        let (offsetSize, lengthSize) = try Self.sizes(c.readInteger(UInt8.self, endianness: .little), c.readInteger(UInt8.self, endianness: .little))
        let g = HDF5Geometry(image: image, base: at, offsetSize: offsetSize, lengthSize: lengthSize)
        guard c.skip(1), let leafK = c.readInteger(UInt16.self, endianness: .little),
              c.skip(2 + 4 + (image[image.startIndex + at + 8] == 1 ? 4 : 0)),
              g.readAddress(&c) != nil, g.readAddress(&c) != nil, g.readAddress(&c) != nil,
              let driverInfo = g.readAddress(&c), g.readLength(&c) != nil, let root = g.readAddress(&c),
              let cacheType = c.readInteger(UInt32.self, endianness: .little), c.skip(4),
              let btree = g.readAddress(&c), let heap = g.readAddress(&c) else { throw Self.cut }
        guard driverInfo == g.undefinedAddress else {
            throw ClipSafetyError.unsupported("HDF5: a driver information block (files split over several files) is not read")
        }
        guard leafK > 0 else { throw ClipSafetyError.malformed("HDF5: the superblock's group leaf K is 0") }
        self.init(geometry: g, rootHeader: root,
                  rootSymbolTable: cacheType == 1 ? (btree, heap) : nil, extensionHeader: nil, groupLeafK: Int(leafK))
    }

    /// Versions 2 and 3: sizes, flags, base, extension, end-of-file and root header addresses.
    private init(version23 c: ByteCursor, image: Data, at: Int) throws {
        var c = c
        let (offsetSize, lengthSize) = try Self.sizes(c.readInteger(UInt8.self, endianness: .little), c.readInteger(UInt8.self, endianness: .little))
        let g = HDF5Geometry(image: image, base: at, offsetSize: offsetSize, lengthSize: lengthSize)
        guard c.skip(1), g.readAddress(&c) != nil, let ext = g.readAddress(&c), g.readAddress(&c) != nil,
              let root = g.readAddress(&c) else { throw Self.cut }
        // Groups in these files rarely have symbol tables; 4 is libhdf5's default leaf K (an
        // extension's B-tree K message may change it; see HDF5Preflight).
        self.init(geometry: g, rootHeader: root, rootSymbolTable: nil,
                  extensionHeader: ext == g.undefinedAddress ? nil : ext, groupLeafK: 4)
    }

    private init(geometry: HDF5Geometry, rootHeader: UInt64, rootSymbolTable: (btree: UInt64, heap: UInt64)?,
                 extensionHeader: UInt64?, groupLeafK: Int) {
        self.geometry = geometry
        self.rootHeader = rootHeader
        self.rootSymbolTable = rootSymbolTable
        self.extensionHeader = extensionHeader
        self.groupLeafK = groupLeafK
    }
}
