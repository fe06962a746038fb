import Core

/// One `categorical_lookup` column as a search over sorted float32 thresholds, for graphs that
/// cannot format numbers (the ONNX export): for a float32 input `x` that is neither NaN nor
/// −0, the vocabulary index is `values[count of thresholds t with x ≥ t]`; NaN gives `nan`
/// and −0 gives `negativeZero`. It is built from the exact float64 intervals the runtime uses
/// (`CategoricalLookup`), so for every float32 input it gives the runtime's own answer.
public struct CategoricalSearch: Sendable, Equatable {
    public var column: Int
    /// Sorted, strictly increasing, no NaN and no −0.
    public var thresholds: [Float]
    /// `thresholds.count + 1` indices (as float32, as the runtime stores them).
    public var values: [Float]
    /// The index of every NaN input, whatever its sign bit.
    public var nan: Float
    /// The index of −0 (`%f` prints `-0.000000`, which may be a key of its own).
    public var negativeZero: Float

    /// The search for column `column`'s vocabulary tensors; throws `.unsupported` when the
    /// vocabulary gives NaN and −NaN different indices (no float comparison can tell them
    /// apart).
    public static func build(_ column: CategoricalColumn, keys: Tensor, values: Tensor) throws -> CategoricalSearch {
        let lookup = try Scorer.vocabulary(column, keys: keys, values: values)
        let nan = lookup.value(of: .nan), negativeNaN = lookup.value(of: -Double.nan)
        guard nan == negativeNaN else {
            throw ClipSafetyError.unsupported("categorical column \(column.column): the vocabulary gives 'nan' and '-nan' different indices, which only the sign bit of a NaN tells apart")
        }
        var search = CategoricalSearch(column: column.column, thresholds: [], values: [lookup.values[0]],
                                       nan: nan, negativeZero: lookup.value(of: -0.0))
        for (start, value) in zip(lookup.starts.dropFirst(), lookup.values.dropFirst()) {
            guard let threshold = firstFloat(atOrAbove: start) else { break }
            if threshold == search.thresholds.last {
                // No float32 lies in the interval before this one: only the later value is reachable.
                search.values[search.values.count - 1] = value
            } else {
                search.thresholds.append(threshold)
                search.values.append(value)
            }
        }
        return search
    }

    /// The index the search gives `x` (the graph an exporter builds computes exactly this).
    public func value(of x: Float) -> Float {
        if x.isNaN { return nan }
        if x == 0 && x.sign == .minus { return negativeZero }
        // The thresholds increase strictly, so the count is where the first one above x stands.
        var low = 0, high = thresholds.count
        while low < high {
            let middle = (low + high) / 2
            if x >= thresholds[middle] { low = middle + 1 } else { high = middle }
        }
        return values[low]
    }

    /// The smallest float32 other than −0 whose `orderedKey` (as a double) is at least `start`;
    /// nil when only NaNs are (`start` above +inf).
    static func firstFloat(atOrAbove start: UInt64) -> Float? {
        if start > CategoricalLookup.orderedKey(.infinity) { return nil }
        if start <= CategoricalLookup.orderedKey(-.infinity) { return -.infinity }
        // Undo orderedKey: the double whose key is `start`.
        let bits = start & (1 << 63) != 0 ? start ^ (1 << 63) : ~start
        let d = Double(bitPattern: bits)
        var f = Float(d)
        if Double(f) < d { f = f.nextUp }
        return f == 0 ? 0 : f  // −0 is not an input the search sees: +0 is the next float up
    }
}
