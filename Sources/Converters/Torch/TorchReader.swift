import Foundation
import Runtime

/// PyTorch checkpoints (`torch.save`, zip and legacy containers), described as their
/// state-dict tensors. The pickle is read by an allowlist and never executed.
enum TorchReader {
    /// Pickle protocol 2, then the LONG1 of torch's legacy magic number 0x1950a86a20f9469cfc6c.
    static let legacyPrefix: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

    static let legacy = FormatReader(kind: .torchLegacy, matches: { $0.starts(with: legacyPrefix) }, describe: describe)
    static let zip = FormatReader(kind: .torchZip, matches: { probe in
        probe.zipMembers?.contains { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") } == true
    }, describe: describe)

    /// Described from the pickle and the storage headers: a tensor's bytes are read (and
    /// checked against its storage) only when asked, so a checkpoint of any size is described
    /// within the limits, and a conversion reads only the tensors it uses.
    static func describe(_ bytes: Data, limits: ReaderLimits) throws -> FileDescription {
        let layout = try TorchCheckpoint.layout(bytes: bytes, limits: limits)
        try TorchCheckpoint.checkStorageRefs(layout.entries)
        for (name, ref) in layout.entries { _ = try TorchCheckpoint.checkView(name: name, ref: ref) }
        let budget = TorchReadBudget(limit: limits.maxUncompressedBytes)
        let tensors = layout.entries.map { name, ref in
            DescribedTensor(name: name, dtype: ref.dtype.dtype.rawValue, shape: ref.shape) {
                try budget.charge(ref, name: name)
                return try TorchCheckpoint.tensor(name: name, ref: ref, storage: try layout.storages.data(ref.storage.key),
                                                  bigEndian: layout.bigEndian, limits: limits)
            }
        }
        let note = layout.container == .zip ? "torch zip container (torch.save since 1.6)" : "torch legacy container (before 1.6)"
        return FileDescription(format: layout.container == .zip ? .torchZip : .torchLegacy, tensors: tensors,
                               metadata: layout.values, notes: [note])
    }
}

/// Bytes of tensors read from one checkpoint, capped by `--max-uncompressed-bytes`: views may
/// repeat a storage (stride 0, shared keys), so what reads expand to is counted, not the file.
final class TorchReadBudget: @unchecked Sendable {
    private let limit: Int
    private var used = 0
    private let lock = NSLock()

    init(limit: Int) { self.limit = limit }

    func charge(_ ref: TorchTensorRef, name: String) throws {
        lock.lock()
        defer { lock.unlock() }
        let counted = checkedByteCount(shape: ref.shape, dtype: ref.dtype.byteSize).map { used.addingReportingOverflow($0.bytes) }
        guard let (sum, overflow) = counted, !overflow, sum <= limit else {
            throw ClipSafetyError.limitExceeded("torch: tensors read up to '\(name)' expand to more than the uncompressed limit of \(limit) bytes (raise with --max-uncompressed-bytes)")
        }
        used = sum
    }
}
