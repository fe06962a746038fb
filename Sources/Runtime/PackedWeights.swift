import CKernels

/// A dense layer's weight [outputs, inputs], packed once at load for
/// `clipsafety_fixed_order_product`: panels of `CLIPSAFETY_PANEL` output columns, each
/// inputs × 16, zero past the last column.
///
/// The product computes every output element as one float32 FMA chain over the inputs in order,
/// so a row's scores never depend on the rows scored with it, their number, the thread that
/// runs them or the part boundaries. OpenBLAS cannot give that: on this Zen machine its sgemm
/// sums a row differently by the row's position in the kernel's 12-row groups (the two halves
/// of a group differ, and so do the 8/4/2/1-row tails), so fixed blocks of rows would still
/// move a row's bits whenever a batch starts at another offset.
final class PackedWeights: @unchecked Sendable {
    let inputs: Int
    let outputs: Int
    /// The weight as given (row-major), kept only for layers of at most 4 outputs, which the
    /// few-dot-products kernel reads (`Scorer.runFirstStep`).
    let rowMajor: [Float]?
    private let panels: UnsafeMutablePointer<Float>

    static let panelWidth = Int(CLIPSAFETY_PANEL)

    init(_ weight: [Float], outputs: Int, inputs: Int) {
        precondition(weight.count == outputs * inputs)
        self.inputs = inputs
        self.outputs = outputs
        self.rowMajor = outputs <= 4 ? weight : nil
        let w = Self.panelWidth
        let count = (outputs + w - 1) / w * w * inputs
        panels = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(count, 1) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        panels.initialize(repeating: 0, count: Swift.max(count, 1))
        for j in 0..<outputs {
            let panel = panels + (j / w) * inputs * w + j % w
            for i in 0..<inputs { panel[i * w] = weight[j * inputs + i] }
        }
    }

    deinit { panels.deallocate() }

    /// out (rows × outputs) = x (rows × inputs) · weightᵀ, in the fixed order above. The AVX2
    /// kernel and the portable one give the same bits.
    func multiply(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, portable: Bool = false) {
        if Scorer.hasAVX2FMA && !portable {
            clipsafety_fixed_order_product_avx2(x, rows, inputs, panels, outputs, out)
        } else {
            clipsafety_fixed_order_product(x, rows, inputs, panels, outputs, out)
        }
    }
}
