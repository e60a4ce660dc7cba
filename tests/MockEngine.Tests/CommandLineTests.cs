namespace HybridServing.MockEngine.Tests;

public sealed class CommandLineTests
{
    private static MockEngineOptions Parse(params string[] args) => MockEngineCommandLine.Parse(args, _ => null);

    [Fact]
    public void Defaults_are_vllms()
    {
        var o = Parse("--model", "meta-llama/Llama-3.1-8B-Instruct");
        Assert.Equal("0.0.0.0", o.Host);
        Assert.Equal(8000, o.Port);
        Assert.False(o.EnableLora);
        Assert.Equal(1, o.MaxLoras);
        Assert.Equal(1, o.EffectiveMaxCpuLoras);
        Assert.Equal(16, o.MaxLoraRank);
        Assert.Equal(256, o.MaxNumSeqs);
        Assert.Equal(131072, o.EffectiveMaxModelLen);
        Assert.Null(o.ApiKey);
        Assert.False(o.AllowRuntimeLoraUpdating);
        Assert.Equal(["meta-llama/Llama-3.1-8B-Instruct"], o.BaseNames);
        Assert.Equal("h100-llama3-8b", o.Profile);
        Assert.Equal("tiny", Parse("--model", "test/tiny").Profile);
        Assert.Equal("h100-llama3-8b", Parse("--model", "test/tiny", "--mock-profile", "h100-llama3-8b").Profile);
    }

    [Fact]
    public void The_issue_command_line_parses()
    {
        var o = Parse("--model", "meta-llama/Llama-3.1-8B-Instruct", "--enable-lora", "--max-loras", "4", "--port", "8000");
        Assert.True(o.EnableLora);
        Assert.Equal(4, o.MaxLoras);
        Assert.Equal(4, o.EffectiveMaxCpuLoras);
    }

    [Fact]
    public void Served_names_lora_modules_both_forms_and_equals_syntax()
    {
        var o = Parse("serve", "my/model", "--served-model-name", "a", "b", "--enable-lora", "--lora-modules", "x=/p/x",
            """{"name":"y","path":"/p/y","base_model_name":"b"}""", "--max-cpu-loras=8", "--max-lora-rank", "64");
        Assert.Equal("my/model", o.Model);
        Assert.Equal(["a", "b"], o.BaseNames);
        Assert.Equal("a", o.PrimaryName);
        Assert.Equal([new LoraModuleSpec("x", "/p/x", null), new LoraModuleSpec("y", "/p/y", "b")], o.LoraModules);
        Assert.Equal(8, o.EffectiveMaxCpuLoras);
        Assert.Equal(64, o.MaxLoraRank);
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData(" TRUE ", true)]
    [InlineData("True", true)]
    [InlineData("0", false)]
    [InlineData("yes", false)]
    [InlineData(null, false)]
    public void Runtime_lora_updating_reads_the_injected_environment(string? value, bool expected)
    {
        var o = MockEngineCommandLine.Parse(["--model", "m"], n => n == "VLLM_ALLOW_RUNTIME_LORA_UPDATING" ? value : null);
        Assert.Equal(expected, o.AllowRuntimeLoraUpdating);
    }

    [Fact]
    public void Api_key_comes_from_flag_else_environment()
    {
        Assert.Equal("env", MockEngineCommandLine.Parse(["--model", "m"], n => n == "VLLM_API_KEY" ? "env" : null).ApiKey);
        Assert.Equal("flag", MockEngineCommandLine.Parse(["--model", "m", "--api-key", "flag"], n => n == "VLLM_API_KEY" ? "env" : null).ApiKey);
    }

    [Theory]
    [InlineData("max_cpu_loras (2) must be >= max_loras (4)", "--enable-lora", "--max-loras", "4", "--max-cpu-loras", "2")]
    [InlineData("max_loras (0) must be >= 1.", "--max-loras", "0")]
    [InlineData("argument --max-lora-rank: invalid choice: 7 (choose from 1, 8, 16, 32, 64, 128, 256, 320, 512)", "--max-lora-rank", "7")]
    [InlineData("argument --max-loras: invalid int value: 'four'", "--max-loras", "four")]
    [InlineData("argument --port: expected one argument", "--port")]
    [InlineData("unrecognized arguments: --bogus", "--bogus")]
    [InlineData("Invalid JSON format for --lora-modules: {bad", "--enable-lora", "--lora-modules", "{bad")]
    [InlineData("--lora-modules needs --enable-lora", "--lora-modules", "a=/x")]
    [InlineData("argument --mock-time-scale", "--mock-time-scale", "0")]
    [InlineData("argument --mock-profile: invalid choice: 'a100'", "--mock-profile", "a100")]
    [InlineData("argument --mock-fail-rate: must be within [0, 1]", "--mock-fail-rate", "1.5")]
    [InlineData("argument --host", "--host", "not a host")]
    [InlineData("max_num_batched_tokens (8) must be greater than or equal to max_num_seqs (256).", "--max-num-batched-tokens", "8")]
    public void Invalid_values_name_the_flag(string expected, params string[] args)
    {
        var e = Assert.Throws<MockEngineOptionsException>(() => Parse(["--model", "m", .. args]));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Lora_modules_json_with_missing_path_is_rejected()
    {
        var e = Assert.Throws<MockEngineOptionsException>(() => Parse("--model", "m", "--enable-lora", "--lora-modules", """{"name":"a","x":1}"""));
        Assert.StartsWith("Invalid fields for --lora-modules:", e.Message, StringComparison.Ordinal);
    }
}
