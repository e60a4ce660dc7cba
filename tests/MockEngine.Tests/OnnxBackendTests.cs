using System.Buffers.Binary;
using System.Text.Json;
using HybridServing.Contracts.Peft;
using HybridServing.MockEngine.Onnx;
using HybridServing.TestKit;

namespace HybridServing.MockEngine.Tests;

/// <summary>
/// The ONNX backend computes real tokens: a tiny transformer on ONNX Runtime with each adapter's LoRA
/// weights applied per row. Over real HTTP where the behaviour is the engine's, directly on the runtime
/// where the numbers themselves are checked against a plain C# reference.
/// </summary>
public sealed class OnnxBackendTests : IDisposable
{
    private static readonly string[] AllModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
    private readonly TempDirectory _dir = new("me-onnx");

    public void Dispose() => _dir.Dispose();

    private static Task<MockEngineHost> Engine(params string[] extra) =>
        MockEngineHost.StartAsync(["--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "2", "--max-cpu-loras", "4", "--mock-backend", "onnx", .. extra]);

    private string Trained(string name, int seed, int rank = 8, double? alpha = null, string dtype = "BF16", string[]? modules = null)
    {
        var dir = Path.Combine(_dir.Path, name);
        PeftAdapterWriter.Write(dir, BaseModelShape.For(TestAdapters.TinyModel), rank, modules ?? ["q_proj", "v_proj"], seed, alpha, trained: true, dtype: dtype);
        return dir;
    }

    private static async Task Load(HttpClient http, string name, string path)
    {
        var r = await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = name, lora_path = path }));
        Assert.True(r.Status == 200, r.Text);
    }

    private static async Task<(string Text, string Finish, JsonElement Choice, int CompletionTokens)> Complete(HttpClient http, string model, object? sampling = null, string prompt = "The order arrived late and the box was")
    {
        var body = new Dictionary<string, object?> { ["model"] = model, ["prompt"] = prompt, ["max_tokens"] = 16, ["temperature"] = 0 };
        if (sampling is not null)
            foreach (var p in JsonSerializer.SerializeToElement(sampling).EnumerateObject()) body[p.Name] = p.Value;
        var r = await http.Send("v1/completions", JsonSerializer.Serialize(body));
        Assert.True(r.Status == 200, r.Text);
        var choice = r.Body.GetProperty("choices")[0];
        return (choice.GetProperty("text").GetString()!, choice.GetProperty("finish_reason").GetString()!, choice,
            r.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Greedy_answers_repeat_and_adapters_change_them_while_a_zero_lora_B_changes_nothing()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        await Load(http, "a", Trained("a", seed: 1));
        await Load(http, "b", Trained("b", seed: 2));
        await Load(http, "zero", TestAdapters.Write(_dir.Path, "zero", rank: 8)); // PEFT's initialisation: lora_B = 0

        var first = await Complete(http, TestAdapters.TinyModel);
        var second = await Complete(http, TestAdapters.TinyModel);
        Assert.Equal(first.Text, second.Text);
        Assert.Equal(16, first.CompletionTokens);
        Assert.Equal("length", first.Finish);

        var a = await Complete(http, "a");
        var b = await Complete(http, "b");
        var zero = await Complete(http, "zero");
        Assert.NotEqual(first.Text, a.Text);
        Assert.NotEqual(first.Text, b.Text);
        Assert.NotEqual(a.Text, b.Text);
        Assert.Equal(first.Text, zero.Text);
        Assert.Equal(a.Text, (await Complete(http, "a")).Text);
    }

    [Fact]
    public async Task Concurrent_requests_for_the_base_model_and_two_adapters_get_their_solo_answers()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        await Load(http, "a", Trained("a", seed: 1));
        await Load(http, "b", Trained("b", seed: 2, modules: AllModules));
        string[] models = [TestAdapters.TinyModel, "a", "b", "a", TestAdapters.TinyModel, "b"];
        var solo = new List<string>();
        foreach (var model in models) solo.Add((await Complete(http, model, new { max_tokens = 24 })).Text);
        // Sent together, they share the scheduler's steps (the engine's max_loras 2 admits both adapters at once).
        var together = await Task.WhenAll(models.Select(m => Complete(http, m, new { max_tokens = 24 })));
        Assert.Equal(solo, together.Select(t => t.Text));
    }

    [Fact]
    public async Task Chat_streams_computed_tokens_and_the_usage_counts_them()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var body = Http.Json(new { messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 6, temperature = 0, stream = true, stream_options = new { include_usage = true } });
        using var response = await http.PostJson("v1/chat/completions", body);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToArray();
        var deltas = chunks.Skip(1).Where(c => c.GetProperty("choices").GetArrayLength() > 0).ToArray();
        Assert.Equal(6, deltas.Length);
        Assert.Equal("length", deltas[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(6, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var streamed = string.Concat(deltas.Select(d => d.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));

        var whole = await http.Send("v1/chat/completions", Http.Json(new { messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 6, temperature = 0 }));
        Assert.Equal(streamed, whole.Body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task Sampling_honours_seed_top_p_and_stop()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        var greedy = await Complete(http, TestAdapters.TinyModel, new { max_tokens = 24 });

        var seeded = await Complete(http, TestAdapters.TinyModel, new { max_tokens = 24, temperature = 1.5, seed = 7 });
        Assert.Equal(seeded.Text, (await Complete(http, TestAdapters.TinyModel, new { max_tokens = 24, temperature = 1.5, seed = 7 })).Text);
        Assert.NotEqual(seeded.Text, (await Complete(http, TestAdapters.TinyModel, new { max_tokens = 24, temperature = 1.5, seed = 8 })).Text);
        Assert.NotEqual(greedy.Text, seeded.Text);
        // A nucleus that holds only the most likely token is greedy decoding, whatever the temperature.
        Assert.Equal(greedy.Text, (await Complete(http, TestAdapters.TinyModel, new { max_tokens = 24, temperature = 1.5, top_p = 1e-6, seed = 9 })).Text);

        // Stop at the third word of the greedy answer: the text ends before it, vLLM's reasons are given.
        var words = greedy.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var stop = " " + words[2];
        var stopped = await Complete(http, TestAdapters.TinyModel, new { max_tokens = 24, stop = new[] { stop } });
        Assert.Equal(greedy.Text[..greedy.Text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.Equal("stop", stopped.Finish);
        Assert.Equal(stop, stopped.Choice.GetProperty("stop_reason").GetString());

        (await http.Send("v1/completions", Http.Json(new { prompt = "x", temperature = -1 })))
            .AssertError(400, "BadRequestError", "temperature must be non-negative, got -1.");
        (await http.Send("v1/completions", Http.Json(new { prompt = "x", top_p = 0 })))
            .AssertError(400, "BadRequestError", "top_p must be in (0, 1], got 0.");
    }

    [Fact]
    public async Task Unloading_and_loading_another_file_under_the_same_name_changes_the_answer()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);
        await Load(http, "x", Trained("x1", seed: 11));
        var before = await Complete(http, "x");
        var unload = await http.Send("v1/unload_lora_adapter", Http.Json(new { lora_name = "x" }));
        Assert.Equal(200, unload.Status);
        await Load(http, "x", Trained("x2", seed: 12));
        var after = await Complete(http, "x");
        Assert.NotEqual(before.Text, after.Text);
        await Load(http, "y", Trained("x1-again", seed: 11));
        Assert.Equal(before.Text, (await Complete(http, "y")).Text);
    }

    [Fact]
    public async Task Sleep_mode_works_on_this_backend_and_a_deep_sleep_wakes_to_the_same_answers()
    {
        await using var engine = await MockEngineHost.StartAsync(
            new MockEngineHostOptions { Environment = new Dictionary<string, string> { [MockEngineCommandLine.ServerDevModeVariable] = "1" } },
            ["--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "2", "--mock-backend", "onnx", "--enable-sleep-mode"]);
        using var http = Http.Client(engine.BaseUrl);
        await Load(http, "a", Trained("a", seed: 21));
        var before = (Base: await Complete(http, TestAdapters.TinyModel), Adapter: await Complete(http, "a"));

        Assert.Equal(200, (await http.Send("sleep?level=2", "")).Status);
        (await http.Send("v1/completions", Http.Json(new { model = "a", prompt = "x" })))
            .AssertError(503, "ServiceUnavailableError", "The engine is sleeping (sleep mode); wake it with POST /wake_up.");
        Assert.Equal(200, (await http.Send("wake_up", "")).Status);

        // Level 2 discarded the weights; the model is rebuilt from its seed and the adapter is still applied.
        Assert.Equal(before.Base.Text, (await Complete(http, TestAdapters.TinyModel)).Text);
        Assert.Equal(before.Adapter.Text, (await Complete(http, "a")).Text);
    }

    [Fact]
    public async Task Truncated_nan_misshapen_and_overranked_adapters_are_refused_naming_the_tensor()
    {
        await using var engine = await Engine();
        using var http = Http.Client(engine.BaseUrl);

        var truncated = Trained("truncated", seed: 3);
        var weights = Path.Combine(truncated, PeftAdapter.SafetensorsFileName);
        File.WriteAllBytes(weights, File.ReadAllBytes(weights)[..^10]);
        var r = await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "truncated", lora_path = truncated }));
        Assert.Equal(400, r.Status);
        Assert.Matches("^Call to add_lora method failed: Loading lora truncated failed: safetensors tensor 'base_model[^']+lora_B.weight' ends at", r.Body.GetProperty("error").GetProperty("message").GetString());

        var nan = Trained("nan", seed: 4, dtype: "F32");
        var path = Path.Combine(nan, PeftAdapter.SafetensorsFileName);
        var header = SafetensorsHeader.ReadFile(path);
        var victim = header.Tensors.First(t => t.Name.Contains("layers.1.self_attn.v_proj.lora_A", StringComparison.Ordinal));
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            file.Position = 8 + header.HeaderLength + victim.Begin + 4 * 5;
            file.Write(BitConverter.GetBytes(float.NaN));
        }
        (await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "nan", lora_path = nan })))
            .AssertError(400, "BadRequestError", $"Call to add_lora method failed: Loading lora nan failed: LoRA weight '{victim.Name}' holds a non-finite value (NaN) at element 5.");

        var wide = Path.Combine(_dir.Path, "wide");
        var wrongShape = new BaseModelShape("other", 2, new Dictionary<string, (int In, int Out)> { ["q_proj"] = (64, 32) });
        PeftAdapterWriter.Write(wide, wrongShape, 8, ["q_proj"], trained: true);
        (await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "wide", lora_path = wide })))
            .AssertError(400, "BadRequestError", "Call to add_lora method failed: LoRA weight 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight' has shape [32, 8], but base model test/tiny with rank 8 needs [64, 8].");

        var big = Trained("big", seed: 5, rank: 32);
        var overRanked = await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "big", lora_path = big }));
        Assert.Equal(400, overRanked.Status);
        Assert.Contains("32", overRanked.Body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        using var models = JsonDocument.Parse(await http.GetStringAsync("v1/models"));
        Assert.Equal(1, models.RootElement.GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task A_llama_named_engine_on_the_onnx_backend_checks_adapters_against_the_tiny_model()
    {
        await using var engine = await MockEngineHost.StartAsync("--model", "meta-llama/Llama-3.1-8B-Instruct", "--enable-lora", "--mock-backend", "onnx");
        using var http = Http.Client(engine.BaseUrl);
        await Load(http, "tiny", Trained("tiny", seed: 6));
        Assert.NotEqual((await Complete(http, "meta-llama/Llama-3.1-8B-Instruct")).Text, (await Complete(http, "tiny")).Text);
    }

    [Fact]
    public void One_layer_with_an_adapter_matches_a_plain_reference_and_honours_alpha_over_r()
    {
        var model = new TinyModel(32, seed: 0);
        using var runtime = new TinyRuntime(model);
        // alpha 32 over rank 8: the delta is scaled by 4.
        var dir = Trained("reference", seed: 21, rank: 8, alpha: 32, dtype: "F32", modules: AllModules);
        var (weights, problem) = AdapterWeights.Read(PeftAdapter.Read(dir), model);
        Assert.Null(problem);
        int[] tokens = [0, 17, 300, 45, 9, 511, 4];

        var onnx = runtime.Run([new BatchRow(tokens, weights)], TinyGraph.LayerOutput(0));
        var factors = ReadFactors(dir);
        var expected = Reference.Layer0(model, tokens, factors, scale: 4f);
        Assert.Equal(expected.Length, onnx.Length);
        // Float32 against a double-accumulating reference: the rounding error follows the largest activations
        // (the residual stream reaches ~100), so the tolerance is relative to them: 2e-5 of the largest.
        var tolerance = 1e-4f + 2e-5f * expected.Max(Math.Abs);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - onnx[i]) <= tolerance, $"element {i}: reference {expected[i]}, onnx {onnx[i]}, tolerance {tolerance}");

        // The scale matters: ignoring alpha/r (scale 1) or the adapter (scale 0) is far off.
        var unscaled = Reference.Layer0(model, tokens, factors, scale: 1f);
        var baseOnly = Reference.Layer0(model, tokens, factors, scale: 0f);
        Assert.True(MaxDifference(unscaled, onnx) > 0.1f);
        Assert.True(MaxDifference(baseOnly, onnx) > 0.1f);
        var baseOnnx = runtime.Run([new BatchRow(tokens, null)], TinyGraph.LayerOutput(0));
        Assert.True(MaxDifference(baseOnly, baseOnnx) < 1e-2f);
    }

    [Fact]
    public void A_mixed_batch_gives_every_row_the_tokens_it_gets_alone()
    {
        var model = new TinyModel(64, seed: 0);
        using var runtime = new TinyRuntime(model);
        var a = Read(Trained("mix-a", seed: 31), model);
        var b = Read(Trained("mix-b", seed: 32, rank: 16, dtype: "F16", modules: AllModules), model);
        var rows = new (List<int> Tokens, AdapterWeights? Adapter)[]
        {
            ([0, 5, 6, 7], null), ([0, 100, 200, 300, 400, 500, 9], a), ([0, 42], b), ([0, 5, 6, 7], a), ([0, 5, 6, 7], b),
        };
        var solo = rows.Select(r => Greedy(runtime, [(r.Tokens, r.Adapter)], 12)[0]).ToArray();
        var batched = Greedy(runtime, rows, 12);
        for (var i = 0; i < rows.Length; i++) Assert.Equal(solo[i], batched[i]);
        // Same prompt, three models: three different answers.
        Assert.Equal(3, new[] { solo[0], solo[3], solo[4] }.Select(s => string.Join(',', s)).Distinct().Count());
    }

    [Fact]
    public void Bf16_f16_and_f32_files_of_one_adapter_read_as_the_same_weights()
    {
        var model = new TinyModel(8, seed: 0);
        var f32 = Read(Trained("f32", seed: 41, dtype: "F32"), model);
        foreach (var dtype in new[] { "BF16", "F16" })
        {
            var other = Read(Trained(dtype, seed: 41, dtype: dtype), model);
            var f = f32[0, 0]!;
            var o = other[0, 0]!;
            for (var i = 0; i < f.A.Length; i++) Assert.True(Math.Abs(f.A[i] - o.A[i]) <= Math.Abs(f.A[i]) / 100 + 1e-3f, $"{dtype} A[{i}]");
            for (var i = 0; i < f.ScaledB.Length; i++) Assert.True(Math.Abs(f.ScaledB[i] - o.ScaledB[i]) <= Math.Abs(f.ScaledB[i]) / 100 + 1e-3f, $"{dtype} B[{i}]");
        }
    }

    [Theory]
    [InlineData(new[] { "--mock-backend", "gpu" }, "argument --mock-backend: invalid choice: 'gpu' (choose from performance, onnx)")]
    [InlineData(new[] { "--mock-backend", "onnx", "--mock-zero-latency" }, "argument --mock-backend: onnx computes every token, so it cannot be combined with --mock-zero-latency")]
    public void Bad_backend_flags_are_refused(string[] args, string message)
    {
        var e = Assert.Throws<MockEngineOptionsException>(() => MockEngineCommandLine.Parse(args, _ => null));
        Assert.Equal(message, e.Message);
    }

    private static AdapterWeights Read(string dir, TinyModel model)
    {
        var (weights, problem) = AdapterWeights.Read(PeftAdapter.Read(dir), model);
        Assert.Null(problem);
        return weights!;
    }

    /// <summary>Greedy decoding of several rows together, step by step through the runtime.</summary>
    private static List<int>[] Greedy(TinyRuntime runtime, IReadOnlyList<(List<int> Tokens, AdapterWeights? Adapter)> rows, int steps)
    {
        var sequences = rows.Select(r => new List<int>(r.Tokens)).ToArray();
        var generated = rows.Select(_ => new List<int>()).ToArray();
        for (var s = 0; s < steps; s++)
        {
            var logits = runtime.Logits([.. sequences.Select((q, i) => new BatchRow(q, rows[i].Adapter))]);
            for (var i = 0; i < rows.Count; i++)
            {
                var next = Array.IndexOf(logits[i], logits[i].Max());
                sequences[i].Add(next);
                generated[i].Add(next);
            }
        }
        return generated;
    }

    private static float MaxDifference(float[] x, float[] y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Max();

    /// <summary>PEFT's tensors straight from the F32 file: A [r, in] and B [out, r] by (layer, module).</summary>
    private static Dictionary<(int Layer, string Module), (float[] A, float[] B, int Rank)> ReadFactors(string dir)
    {
        var path = Path.Combine(dir, PeftAdapter.SafetensorsFileName);
        var header = SafetensorsHeader.ReadFile(path);
        var bytes = File.ReadAllBytes(path);
        var result = new Dictionary<(int, string), (float[], float[], int)>();
        float[] Values(TensorInfo t)
        {
            var values = new float[t.ByteLength / 4];
            for (var i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan((int)(8 + header.HeaderLength + t.Begin + 4 * i)));
            return values;
        }
        foreach (var a in header.Tensors.Where(t => t.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal)))
        {
            var prefix = a.Name[..^".lora_A.weight".Length];
            var b = header.Tensors.Single(t => t.Name == prefix + ".lora_B.weight");
            var parts = prefix.Split('.');
            result[(int.Parse(parts[4], System.Globalization.CultureInfo.InvariantCulture), parts[^1])] = (Values(a), Values(b), (int)a.Shape[0]);
        }
        return result;
    }

    /// <summary>Embedding, positions and the first decoder layer written out loop by loop, for one sequence.</summary>
    private static class Reference
    {
        public static float[] Layer0(TinyModel m, int[] tokens, Dictionary<(int Layer, string Module), (float[] A, float[] B, int Rank)> lora, float scale)
        {
            int t = tokens.Length, h = m.Hidden, headDim = 16;
            var w = m.LayerWeights[0];
            var x = new float[t][];
            for (var p = 0; p < t; p++)
                x[p] = Enumerable.Range(0, h).Select(i => m.Embedding[tokens[p] * h + i] + m.Positions[p * h + i]).ToArray();

            float[] Linear(float[] input, string module)
            {
                var (inDim, outDim) = m.Dims(module);
                var y = new float[outDim];
                for (var o = 0; o < outDim; o++)
                {
                    double sum = 0;
                    for (var i = 0; i < inDim; i++) sum += input[i] * w.Linear[module][i * outDim + o];
                    y[o] = (float)sum;
                }
                if (lora.TryGetValue((0, module), out var f))
                {
                    var shrunk = new double[f.Rank];
                    for (var r = 0; r < f.Rank; r++)
                        for (var i = 0; i < inDim; i++) shrunk[r] += f.A[r * inDim + i] * input[i];
                    for (var o = 0; o < outDim; o++)
                    {
                        double delta = 0;
                        for (var r = 0; r < f.Rank; r++) delta += f.B[o * f.Rank + r] * shrunk[r];
                        y[o] += (float)(scale * delta);
                    }
                }
                return y;
            }

            float[] Norm(float[] v, float[] gain)
            {
                var rms = Math.Sqrt(v.Average(e => (double)e * e) + TinyModel.NormEpsilon);
                return v.Select((e, i) => (float)(e / rms * gain[i])).ToArray();
            }

            var normed = x.Select(v => Norm(v, w.AttentionNorm)).ToArray();
            var q = normed.Select(v => Linear(v, "q_proj")).ToArray();
            var k = normed.Select(v => Linear(v, "k_proj")).ToArray();
            var vv = normed.Select(v => Linear(v, "v_proj")).ToArray();
            var after = new float[t][];
            for (var p = 0; p < t; p++)
            {
                var context = new float[h];
                for (var head = 0; head < m.Heads; head++)
                {
                    // One key/value head shared by every query head.
                    var scores = new double[p + 1];
                    for (var j = 0; j <= p; j++)
                    {
                        double dot = 0;
                        for (var d = 0; d < headDim; d++) dot += q[p][head * headDim + d] * k[j][d];
                        scores[j] = dot / Math.Sqrt(headDim);
                    }
                    var max = scores.Max();
                    var exp = scores.Select(s => Math.Exp(s - max)).ToArray();
                    var total = exp.Sum();
                    for (var d = 0; d < headDim; d++)
                    {
                        double sum = 0;
                        for (var j = 0; j <= p; j++) sum += exp[j] / total * vv[j][d];
                        context[head * headDim + d] = (float)sum;
                    }
                }
                var attention = Linear(context, "o_proj");
                var residual = x[p].Select((e, i) => e + attention[i]).ToArray();
                var mlpIn = Norm(residual, w.MlpNorm);
                var gate = Linear(mlpIn, "gate_proj");
                var up = Linear(mlpIn, "up_proj");
                var hidden = gate.Select((g, i) => (float)(g / (1 + Math.Exp(-g)) * up[i])).ToArray();
                var down = Linear(hidden, "down_proj");
                after[p] = residual.Select((e, i) => e + down[i]).ToArray();
            }
            return [.. after.SelectMany(v => v)];
        }
    }
}
