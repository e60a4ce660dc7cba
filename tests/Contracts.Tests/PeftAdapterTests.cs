using System.Buffers.Binary;
using System.Text;
using HybridServing.Contracts.Peft;
using HybridServing.TestKit;

namespace HybridServing.Contracts.Tests;

public sealed class PeftAdapterTests : IDisposable
{
    private readonly TempDirectory _dir = new("peft");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_written_adapter_reads_back_with_rank_modules_and_exact_size()
    {
        var path = TestAdapters.Write(_dir.Path, "a", rank: 8);
        var info = PeftAdapter.Read(path);
        Assert.Equal(8, info.Rank);
        Assert.Equal(["q_proj", "v_proj"], info.TargetModules);
        // test/tiny: 2 layers; q: A[8,64] B[64,8]; v: A[8,64] B[16,8]; BF16.
        Assert.Equal(2 * (8 * 64 + 64 * 8 + 8 * 64 + 16 * 8) * 2, info.SizeBytes);
        Assert.Equal(8, info.TensorCount);
    }

    [Fact]
    public void Llama_8b_adapters_have_the_published_size_per_rank()
    {
        // docs/benchmarks.md: about 5.2 MB per unit of rank with all linear layers adapted.
        var shape = BaseModelShape.For("meta-llama/Llama-3.1-8B-Instruct");
        long perRank = shape.Layers * shape.Modules.Values.Sum(m => (long)m.In + m.Out) * 2;
        Assert.InRange(perRank, 5_100_000, 5_300_000);
    }

    [Fact]
    public async Task Digest_is_the_sha256_of_the_weights()
    {
        var info = PeftAdapter.Read(TestAdapters.Write(_dir.Path, "d"));
        var digest = await PeftAdapter.ComputeDigestAsync(info.WeightsFile);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(info.WeightsFile))), digest);
    }

    [Fact]
    public void Missing_directory_or_config_is_not_found()
    {
        Assert.Throws<PeftNotFoundException>(() => PeftAdapter.Read(_dir.Combine("nope")));
        Directory.CreateDirectory(_dir.Combine("empty"));
        var e = Assert.Throws<PeftNotFoundException>(() => PeftAdapter.Read(_dir.Combine("empty")));
        Assert.Equal($"No adapter found for {_dir.Combine("empty")}", e.Message);
    }

    [Theory]
    [InlineData("{}", "Missing required configuration fields: {'r', 'lora_alpha', 'target_modules'}")]
    [InlineData("{\"r\":8,\"lora_alpha\":16}", "Missing required configuration fields: {'target_modules'}")]
    [InlineData("not json", "adapter_config.json is not valid JSON")]
    [InlineData("{\"r\":\"eight\",\"lora_alpha\":16,\"target_modules\":[]}", "adapter_config.json is not valid JSON")]
    public void Malformed_configs_are_refused_with_the_engine_message(string json, string message)
    {
        var e = Assert.Throws<PeftFormatException>(() => PeftConfig.Parse(Encoding.UTF8.GetBytes(json)));
        Assert.StartsWith(message, e.Message);
    }

    [Theory]
    [InlineData("{\"r\":64,\"lora_alpha\":16,\"target_modules\":[\"q_proj\"]}", "LoRA rank 64 is greater than max_lora_rank 16.")]
    [InlineData("{\"r\":8,\"lora_alpha\":16,\"target_modules\":[\"q_proj\"],\"rank_pattern\":{\"q_proj\":32}}", "LoRA rank 32 is greater than max_lora_rank 16.")]
    [InlineData("{\"r\":8,\"lora_alpha\":16,\"target_modules\":[\"q_proj\"],\"bias\":\"all\"}", "Adapter bias is not supported.")]
    [InlineData("{\"r\":8,\"lora_alpha\":16,\"target_modules\":[\"q_proj\"],\"use_dora\":true}", "vLLM does not yet support DoRA.")]
    [InlineData("{\"r\":0,\"lora_alpha\":16,\"target_modules\":[\"q_proj\"]}", "LoRA rank 0 must be greater than 0.")]
    [InlineData("{\"r\":16,\"lora_alpha\":16,\"target_modules\":\"q_proj|v_proj\"}", null)]
    public void Validation_makes_vllms_checks(string json, string? message)
    {
        Assert.Equal(message, PeftConfig.Parse(Encoding.UTF8.GetBytes(json)).Validate(maxLoraRank: 16));
    }

    public static TheoryData<string, byte[]> HostileWeights()
    {
        static byte[] File(string header, int dataBytes, ulong? declared = null)
        {
            var h = Encoding.UTF8.GetBytes(header);
            var bytes = new byte[8 + h.Length + dataBytes];
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, declared ?? (ulong)h.Length);
            h.CopyTo(bytes, 8);
            return bytes;
        }
        const string ok = "{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}";
        return new()
        {
            { "truncated", [1, 2, 3] },
            { "header length", File(ok, 8, declared: 1UL << 40) },
            { "exceeds the file size", File(ok, 8, declared: 10_000) },
            { "beyond the", File(ok, 4) },
            { "data_offsets span", File("{\"t\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,8]}}", 8) },
            { "unknown dtype", File("{\"t\":{\"dtype\":\"Q4\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", 8) },
            { "overlap", File("{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[4,12]}}", 12) },
            { "too large to exist", File("{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8) },
            { "not valid JSON", File("{\"t\":", 8) },
            { "invalid data_offsets", File("{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[8,0]}}", 8) },
            { "needs dtype", File("{\"t\":[1,2]}", 8) },
            { "holds no tensors", File("{\"__metadata__\":{\"format\":\"pt\"}}", 0) },
        };
    }

    [Theory]
    [MemberData(nameof(HostileWeights))]
    public void Hostile_safetensors_files_are_refused_without_large_allocations(string expected, byte[] weights)
    {
        var dir = Directory.CreateDirectory(_dir.Combine(Guid.NewGuid().ToString("N"))).FullName;
        File.WriteAllText(Path.Combine(dir, PeftAdapter.ConfigFileName), "{\"r\":8,\"lora_alpha\":16,\"target_modules\":[\"q_proj\"]}");
        File.WriteAllBytes(Path.Combine(dir, PeftAdapter.SafetensorsFileName), weights);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<PeftFormatException>(() => PeftAdapter.Read(dir));
        Assert.Contains(expected, e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1_000_000, "reading a hostile header allocated more than 1 MB");
    }
}
