using System.Buffers.Binary;
using System.Text;
using HybridServing.TestKit;

namespace HybridServing.MockEngine.Tests;

/// <summary>Corrupt or hostile adapter files: the engine's error, never a crash, a hang or a huge allocation.</summary>
public sealed class HostileFileTests : IAsyncLifetime, IDisposable
{
    private const string GoodConfig = """{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj"],"bias":"none"}""";
    private readonly TempDirectory _dir = new("me-hostile");
    private MockEngineHost _engine = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--mock-profile", "tiny", "--max-lora-rank", "16");
        _http = Http.Client(_engine.BaseUrl);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _engine.DisposeAsync();
    }

    public void Dispose() => _dir.Dispose();

    private string Adapter(string name, string config, byte[]? safetensors)
    {
        var dir = _dir.Combine(name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), config);
        if (safetensors is not null) File.WriteAllBytes(Path.Combine(dir, "adapter_model.safetensors"), safetensors);
        return dir;
    }

    private static byte[] Safetensors(string header, long? declaredLength = null, int dataBytes = 0)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(declaredLength ?? json.Length));
        json.CopyTo(bytes, 8);
        return bytes;
    }

    private static byte[] ValidWeights => Safetensors(
        $$$"""{"{{{TensorA}}}":{"dtype":"BF16","shape":[8,64],"data_offsets":[0,1024]}}""", dataBytes: 1024);

    private const string TensorA = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";

    private async Task<string> Rejected(string dir, int status = 400)
    {
        var r = await _http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "x", lora_path = dir }));
        Assert.True(r.Status == status, $"{r.Status}: {r.Text}");
        var message = r.Body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.StartsWith("Call to add_lora method failed: ", message, StringComparison.Ordinal);
        // The engine is still alive and did not register the name.
        using var health = await _http.GetAsync("health");
        Assert.True(health.IsSuccessStatusCode);
        Assert.DoesNotContain("\"x\"", await _http.GetStringAsync("v1/models"), StringComparison.Ordinal);
        return message;
    }

    [Fact]
    public async Task Truncated_file_shorter_than_the_length_prefix() =>
        Assert.Contains("truncated", await Rejected(Adapter("t", GoodConfig, [1, 2, 3])), StringComparison.Ordinal);

    [Fact]
    public async Task Header_length_beyond_the_file() =>
        Assert.Contains("exceeds the file size", await Rejected(Adapter("h", GoodConfig, Safetensors("{}", declaredLength: 5000))), StringComparison.Ordinal);

    [Fact]
    public async Task Huge_declared_header_is_refused_without_allocating_it() =>
        Assert.Contains("outside 1..", await Rejected(Adapter("huge", GoodConfig, Safetensors("{}", declaredLength: long.MaxValue / 2))), StringComparison.Ordinal);

    [Fact]
    public async Task Offsets_outside_the_file() =>
        Assert.Contains("beyond the", await Rejected(Adapter("o", GoodConfig,
            Safetensors($$$"""{"{{{TensorA}}}":{"dtype":"BF16","shape":[8,64],"data_offsets":[0,1024]}}""", dataBytes: 16))), StringComparison.Ordinal);

    [Fact]
    public async Task Shape_and_byte_size_disagree() =>
        Assert.Contains("data_offsets span", await Rejected(Adapter("s", GoodConfig,
            Safetensors($$$"""{"{{{TensorA}}}":{"dtype":"BF16","shape":[8,64],"data_offsets":[0,16]}}""", dataBytes: 16))), StringComparison.Ordinal);

    [Fact]
    public async Task Header_that_is_not_json() =>
        Assert.Contains("not valid JSON", await Rejected(Adapter("j", GoodConfig, Safetensors("{{{{"))), StringComparison.Ordinal);

    [Fact]
    public async Task Absurd_shape_overflow() =>
        Assert.Contains("too large", await Rejected(Adapter("ov", GoodConfig,
            Safetensors($$$"""{"{{{TensorA}}}":{"dtype":"F64","shape":[9223372036854775807,9223372036854775807],"data_offsets":[0,0]}}"""))), StringComparison.Ordinal);

    [Fact]
    public async Task Config_that_is_not_json() =>
        Assert.Contains("not valid JSON", await Rejected(Adapter("c", "this is not json", Safetensors("{}"))), StringComparison.Ordinal);

    [Fact]
    public async Task Config_missing_required_fields() =>
        Assert.Contains("Missing required configuration fields: {'r', 'target_modules'}",
            await Rejected(Adapter("m", """{"lora_alpha":16}""", Safetensors("{}"))), StringComparison.Ordinal);

    [Fact]
    public async Task Rank_too_high_via_rank_pattern() =>
        Assert.EndsWith("LoRA rank 32 is greater than max_lora_rank 16.", await Rejected(Adapter("rp",
            """{"r":8,"lora_alpha":16,"target_modules":["q_proj"],"rank_pattern":{"q_proj":32}}""", ValidWeights)), StringComparison.Ordinal);

    [Fact]
    public async Task Dora_is_refused() =>
        Assert.EndsWith("vLLM does not yet support DoRA.", await Rejected(Adapter("d",
            """{"r":8,"lora_alpha":16,"target_modules":["q_proj"],"use_dora":true}""", ValidWeights)), StringComparison.Ordinal);

    [Fact]
    public async Task Bias_is_refused() =>
        Assert.EndsWith("Adapter bias is not supported.", await Rejected(Adapter("b",
            """{"r":8,"lora_alpha":16,"target_modules":["q_proj"],"bias":"all"}""", ValidWeights)), StringComparison.Ordinal);

    [Fact]
    public async Task Zero_rank_is_refused() =>
        Assert.Contains("must be greater than 0", await Rejected(Adapter("z",
            """{"r":0,"lora_alpha":16,"target_modules":["q_proj"]}""", ValidWeights)), StringComparison.Ordinal);

    [Fact]
    public async Task Config_without_weights_is_not_found()
    {
        var dir = Adapter("nw", GoodConfig, null);
        var r = await _http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = "x", lora_path = dir }));
        r.AssertError(404, "NotFoundError", $"Call to add_lora method failed: Loading lora x failed: No adapter found for {dir}");
    }

    [Fact]
    public async Task Oversized_config_is_refused_unread()
    {
        var dir = Adapter("big", GoodConfig, Safetensors("{}"));
        using (var f = new FileStream(Path.Combine(dir, "adapter_config.json"), FileMode.Create)) f.SetLength(2 << 20);
        Assert.Contains("the limit is", await Rejected(dir), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Overlapping_tensors() =>
        Assert.Contains("overlap", await Rejected(Adapter("ol", GoodConfig, Safetensors(
            """{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}""", dataBytes: 16))), StringComparison.Ordinal);
}
