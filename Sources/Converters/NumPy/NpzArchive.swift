import Foundation
import Runtime

/// `.npz` files: a zip of `.npy` members, read in memory and written stored.
public enum NpzArchive {
    /// Reads every `<key>.npy` member; keys are member names without `.npy`.
    public static func read(bytes: Data, limits: ReaderLimits = .init()) throws -> [String: NpyArray] {
        let zip = try ZipArchive(bytes: bytes, limits: limits)
        var arrays: [String: NpyArray] = [:]
        for entry in zip.entries where entry.name.hasSuffix(".npy") {
            let key = String(entry.name.dropLast(4))
            do {
                let array = try NpyArray(bytes: try zip.read(entry))
                try NumPyReader.checkElements(array, limits: limits)
                arrays[key] = array
            } catch let e as ClipSafetyError {
                throw ClipSafetyError(e.kind, "npz member '\(entry.name)': \(e.message)")
            }
        }
        return arrays
    }

    public static func read(contentsOf path: String, limits: ReaderLimits = .init()) throws -> [String: NpyArray] {
        try read(bytes: try MappedFile.map(path, limits: limits), limits: limits)
    }

    /// Writes `<key>.npy` members in sorted key order, atomically.
    public static func write(_ arrays: [String: NpyArray], to path: String) throws {
        let members = arrays.keys.sorted().map { (name: $0 + ".npy", data: arrays[$0]!.serialized()) }
        try ZipArchive.write(members: members, to: path)
    }
}
