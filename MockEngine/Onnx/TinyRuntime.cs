using Microsoft.ML.OnnxRuntime;
using SessionOptions = Microsoft.ML.OnnxRuntime.SessionOptions;

namespace HybridServing.MockEngine.Onnx;

/// <summary>One row of a batch: its whole token sequence so far and the adapter it runs with (null: the base model).</summary>
internal sealed record BatchRow(IReadOnlyList<int> Tokens, AdapterWeights? Adapter);

/// <summary>
/// The <see cref="TinyModel"/>'s graph in an ONNX Runtime CPU session. A run takes right-padded rows
/// (the causal mask keeps padding out of every real position) and builds the gathered LoRA stacks:
/// slot 0 zeros for base rows, one slot per distinct adapter in the batch, ranks zero-padded to the
/// batch's largest. There is no KV cache: every step recomputes each row's whole sequence.
/// </summary>
internal sealed class TinyRuntime : IDisposable
{
    private const float Masked = -1e9f;
    private readonly InferenceSession _session;
    private readonly SessionOptions _sessionOptions;

    public TinyRuntime(TinyModel model, int threads = 1)
    {
        Model = model;
        _sessionOptions = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        _session = new InferenceSession(TinyGraph.Build(model), _sessionOptions);
    }

    public TinyModel Model { get; }

    /// <summary>The next-token logits of every row, <c>[rows][vocab]</c>.</summary>
    public float[][] Logits(IReadOnlyList<BatchRow> rows)
    {
        var flat = Run(rows, TinyGraph.Logits);
        var result = new float[rows.Count][];
        for (var b = 0; b < rows.Count; b++) result[b] = flat.AsSpan(b * TinyModel.Vocab, TinyModel.Vocab).ToArray();
        return result;
    }

    /// <summary>Any graph output, flattened (for <see cref="TinyGraph.LayerOutput"/>: <c>[rows, longest, hidden]</c>).</summary>
    public float[] Run(IReadOnlyList<BatchRow> rows, string output)
    {
        ArgumentOutOfRangeException.ThrowIfZero(rows.Count);
        var batch = rows.Count;
        var seq = rows.Max(r => r.Tokens.Count);
        if (seq < 1 || seq > Model.MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(rows), $"Sequences must hold 1..{Model.MaxPositions} tokens; the longest has {seq}.");

        var ids = new long[batch * seq];
        var last = new long[batch];
        var slotOf = new long[batch];
        var adapters = new List<AdapterWeights>();
        for (var b = 0; b < batch; b++)
        {
            var tokens = rows[b].Tokens;
            if (tokens.Count == 0) throw new ArgumentException($"Row {b} has no tokens.", nameof(rows));
            for (var t = 0; t < tokens.Count; t++) ids[b * seq + t] = tokens[t];
            last[b] = tokens.Count - 1;
            if (rows[b].Adapter is { } adapter)
            {
                var slot = adapters.IndexOf(adapter);
                if (slot < 0) { adapters.Add(adapter); slot = adapters.Count - 1; }
                slotOf[b] = slot + 1;
            }
        }
        var positions = new long[seq];
        for (var t = 0; t < seq; t++) positions[t] = t;
        var mask = new float[seq * seq];
        for (var i = 0; i < seq; i++)
            for (var j = i + 1; j < seq; j++) mask[i * seq + j] = Masked;

        var names = new List<string> { TinyGraph.InputIds, TinyGraph.PositionIds, TinyGraph.CausalMask, TinyGraph.LastIndex, TinyGraph.RowSlot };
        var values = new List<OrtValue>
        {
            OrtValue.CreateTensorValueFromMemory(ids, [batch, seq]),
            OrtValue.CreateTensorValueFromMemory(positions, [seq]),
            OrtValue.CreateTensorValueFromMemory(mask, [seq, seq]),
            OrtValue.CreateTensorValueFromMemory(last, [batch, 1]),
            OrtValue.CreateTensorValueFromMemory(slotOf, [batch]),
        };
        try
        {
            var slots = adapters.Count + 1;
            var rank = Math.Max(1, adapters.Count == 0 ? 1 : adapters.Max(a => a.MaxRank));
            for (var l = 0; l < Model.Layers; l++)
            {
                for (var m = 0; m < TinyModel.Modules.Count; m++)
                {
                    var (inDim, outDim) = Model.Dims(TinyModel.Modules[m]);
                    var a = new float[slots * inDim * rank];
                    var bStack = new float[slots * rank * outDim];
                    for (var s = 1; s < slots; s++)
                    {
                        if (adapters[s - 1][l, m] is not { } factor) continue;
                        for (var i = 0; i < inDim; i++)
                            Array.Copy(factor.A, i * factor.Rank, a, (s * inDim + i) * rank, factor.Rank);
                        Array.Copy(factor.ScaledB, 0, bStack, s * rank * outDim, factor.Rank * outDim);
                    }
                    names.Add(TinyGraph.LoraA(l, TinyModel.Modules[m]));
                    values.Add(OrtValue.CreateTensorValueFromMemory(a, [slots, inDim, rank]));
                    names.Add(TinyGraph.LoraB(l, TinyModel.Modules[m]));
                    values.Add(OrtValue.CreateTensorValueFromMemory(bStack, [slots, rank, outDim]));
                }
            }
            using var runOptions = new RunOptions();
            using var outputs = _session.Run(runOptions, names, values, [output]);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var value in values) value.Dispose();
        }
    }

    public void Dispose()
    {
        _session.Dispose();
        _sessionOptions.Dispose();
    }
}
