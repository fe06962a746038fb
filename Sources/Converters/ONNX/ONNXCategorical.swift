import Foundation
import Runtime

/// `categorical_lookup` in standard operators, exactly: the runtime's float64 key intervals
/// become sorted float32 thresholds (`CategoricalSearch`), and each listed column of the input
/// is replaced by `values[Σ (x ≥ threshold)]` (counted block-wise), with NaN and −0 (whose `%f`
/// keys no comparison separates) given their own indices by `Where`.
enum ONNXCategorical {
    /// Nodes replacing the listed columns of `activation` (width `width`) by their indices;
    /// returns the new activation.
    static func emit(_ columns: [CategoricalColumn], activation: String, width: Int, model: NativeModel,
                     index: Int, builder: inout ONNXGraphBuilder) throws -> String {
        var looked: [String] = []
        for column in columns {
            guard let keys = model.tensor(named: column.keys), let values = model.tensor(named: column.values) else {
                throw ClipSafetyError.mismatch("graph: column \(column.column) names a missing vocabulary")
            }
            let search = try CategoricalSearch.build(column, keys: keys, values: values)
            looked.append(try emit(search, index: index, builder: &builder))
        }
        // [A | looked-up columns], then every column taken from where it now lives.
        let lookedUp = builder.add("Concat", looked, name: "\(index).categorical_lookup.columns", attributes: [.int("axis", 1)])
        let both = builder.add("Concat", [activation, lookedUp], name: "\(index).categorical_lookup.both", attributes: [.int("axis", 1)])
        var source = (0..<width).map(Int64.init)
        for (k, column) in columns.enumerated() { source[column.column] = Int64(width + k) }
        let order = try builder.int64s("categorical_lookup.\(index).order", source, shape: [width])
        return builder.add("Gather", [both, order], name: "\(index).categorical_lookup", attributes: [.int("axis", 1)])
    }

    /// How many of the sorted `thresholds` each row of `column` ([N, 1]) reaches, as int64 [N],
    /// in two steps of about √T comparisons instead of T: the blocks of `width` thresholds whose
    /// first one is reached say which block holds the row's value (`b`, the count of first
    /// thresholds reached, less one, at least 0), then the row is compared with that block's
    /// thresholds only (gathered per row; the last block padded with NaN, which no value
    /// reaches). The count is `b · width` plus the block's count, the same number as a flat
    /// count over every threshold.
    static func countReached(_ thresholds: [Float], by column: String, axis one: String, prefix: String,
                             builder: inout ONNXGraphBuilder) throws -> String {
        let width = Swift.max(1, Int(Double(thresholds.count).squareRoot().rounded(.up)))
        let blocks = (thresholds.count + width - 1) / width
        var padded = thresholds
        padded += [Float](repeating: .nan, count: blocks * width - thresholds.count)
        let firsts = stride(from: 0, to: thresholds.count, by: width).map { thresholds[$0] }
        let firstTable = try builder.floats(prefix + ".block_starts", firsts, shape: [blocks])
        let reachedBlocks = count(column, firstTable, prefix: prefix + ".blocks", one: one, builder: &builder)
        let scalarOne = try builder.int64s(prefix + ".scalar_one", [1], shape: [])
        let zero = try builder.int64s(prefix + ".scalar_zero", [0], shape: [])
        let previous = builder.add("Sub", [reachedBlocks, scalarOne], name: prefix + ".block_minus_one")
        let block = builder.add("Max", [previous, zero], name: prefix + ".block")
        let table = try builder.floats(prefix + ".thresholds", padded, shape: [blocks, width])
        let rowThresholds = builder.add("Gather", [table, block], name: prefix + ".block_thresholds", attributes: [.int("axis", 0)])
        let within = count(column, rowThresholds, prefix: prefix + ".within", one: one, builder: &builder)
        let blockWidth = try builder.int64s(prefix + ".block_width", [Int64(width)], shape: [])
        let before = builder.add("Mul", [block, blockWidth], name: prefix + ".before_block")
        return builder.add("Add", [before, within], name: prefix + ".count")
    }

    /// Σ (column ≥ thresholds) along axis 1, int64 [N].
    static func count(_ column: String, _ thresholds: String, prefix: String, one: String, builder: inout ONNXGraphBuilder) -> String {
        let reached = builder.add("GreaterOrEqual", [column, thresholds], name: prefix + ".reached")
        let counted = builder.add("Cast", [reached], name: prefix + ".reached_int", attributes: [.int("to", Int64(ONNXDataType.int64))])
        return builder.add("ReduceSum", [counted, one], name: prefix + ".count", attributes: [.int("keepdims", 0)])
    }

    /// One column's index, [N, 1].
    static func emit(_ search: CategoricalSearch, index: Int, builder: inout ONNXGraphBuilder) throws -> String {
        var search = search
        if search.thresholds.isEmpty {
            // Every non-NaN value has one index: a threshold that changes nothing keeps the shapes.
            search.thresholds = [.infinity]
            search.values.append(search.values[0])
        }
        let prefix = "categorical_lookup.\(index).column_\(search.column)"
        let at = try builder.int64s(prefix + ".at", [Int64(search.column)], shape: [])
        let x = builder.add("Gather", [ONNXExport.inputName, at], name: prefix + ".x", attributes: [.int("axis", 1)])
        let one = try builder.int64s(prefix + ".axis", [1], shape: [1])
        let column = builder.add("Unsqueeze", [x, one], name: prefix + ".x_column")
        let count = try countReached(search.thresholds, by: column, axis: one, prefix: prefix, builder: &builder)
        let table = try builder.floats(prefix + ".values", search.values, shape: [search.values.count])
        var value = builder.add("Gather", [table, count], name: prefix + ".index", attributes: [.int("axis", 0)])
        // NaN: its own index (every NaN fails every comparison, so the count alone says values[0]).
        let isNaN = builder.add("IsNaN", [x], name: prefix + ".is_nan")
        let nan = try builder.floats(prefix + ".nan", [search.nan], shape: [])
        value = builder.add("Where", [isNaN, nan, value], name: prefix + ".with_nan")
        // −0: equal to 0 and 1/x = −inf.
        let zero = try builder.floats(prefix + ".zero", [0], shape: [])
        let isZero = builder.add("Equal", [x, zero], name: prefix + ".is_zero")
        let reciprocal = builder.add("Reciprocal", [x], name: prefix + ".reciprocal")
        let negative = builder.add("Less", [reciprocal, zero], name: prefix + ".reciprocal_negative")
        let isNegativeZero = builder.add("And", [isZero, negative], name: prefix + ".is_negative_zero")
        let negativeZero = try builder.floats(prefix + ".negative_zero", [search.negativeZero], shape: [])
        value = builder.add("Where", [isNegativeZero, negativeZero, value], name: prefix + ".with_negative_zero")
        return builder.add("Unsqueeze", [value, one], name: prefix + ".column")
    }
}
