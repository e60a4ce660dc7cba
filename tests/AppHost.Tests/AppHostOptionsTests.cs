using HybridServing.Hosting;

namespace HybridServing.AppHost.Tests;

public sealed class AppHostOptionsTests
{
    [Fact]
    public void Defaults_run_three_engines_with_the_documented_ports()
    {
        var o = AppHostOptions.Parse([]);
        Assert.Equal(3, o.Engines);
        Assert.Equal(8080, o.GatewayPort);
        Assert.Equal(8081, o.ControlPlanePort);
        Assert.Equal(8082, o.ControlPlaneGrpcPort);
        Assert.Equal(EnginePoolOptions.DefaultBaseModel, o.BaseModel);
        Assert.Null(o.ManifestsPath);
    }

    [Fact]
    public void Flags_set_values_and_the_grpc_port_follows_the_http_port()
    {
        var o = AppHostOptions.Parse(["--manifests", "/tmp/m", "--gateway-port", "9000", "--controlplane-port", "9100", "--engines", "2", "--adapter-root", "/a", "--adapter-root", "/b"]);
        Assert.Equal("/tmp/m", o.ManifestsPath);
        Assert.Equal(9000, o.GatewayPort);
        Assert.Equal(9101, o.ControlPlaneGrpcPort);
        Assert.Equal(2, o.Engines);
        Assert.Equal(["/a", "/b"], o.AdapterRoots);
    }

    [Fact]
    public void Mock_backend_onnx_is_an_option_and_a_wrong_backend_names_the_flag()
    {
        Assert.False(AppHostOptions.Parse([]).OnnxBackend);
        Assert.True(AppHostOptions.Parse(["--mock-backend", "onnx"]).OnnxBackend);
        Assert.False(AppHostOptions.Parse(["--mock-backend=performance"]).OnnxBackend);
        var e = Assert.Throws<AppHostOptionsException>(() => AppHostOptions.Parse(["--mock-backend", "gpu"]));
        Assert.Equal("--mock-backend: 'gpu' is not a backend (performance or onnx)", e.Message);
    }

    [Fact]
    public void Sample_adapters_for_the_onnx_backend_have_its_shapes_and_trained_lora_B()
    {
        using var dir = new HybridServing.TestKit.TempDirectory("samples-onnx");
        var root = HybridServing.Hosting.Samples.SampleAdapters.EnsureGenerated(dir.Path, EnginePoolOptions.DefaultBaseModel, _ => { }, onnxBackend: true);
        foreach (var (name, rank) in HybridServing.Hosting.Samples.SampleAdapters.All)
        {
            var info = HybridServing.Contracts.Peft.PeftAdapter.Read(Path.Combine(root, name));
            Assert.Equal("test/tiny", info.Config.BaseModelNameOrPath);
            Assert.Equal(rank, info.Rank);
            var header = HybridServing.Contracts.Peft.SafetensorsHeader.ReadFile(info.WeightsFile);
            var b = header.Tensors.First(t => t.Name.EndsWith("q_proj.lora_B.weight", StringComparison.Ordinal));
            Assert.Equal([64L, rank], b.Shape);
            var bytes = File.ReadAllBytes(info.WeightsFile).AsSpan((int)(8 + header.HeaderLength + b.Begin), (int)b.ByteLength);
            Assert.True(bytes.ToArray().Count(x => x != 0) > bytes.Length / 2, $"{name}: lora_B is (mostly) zero");
        }
        // A folder generated for the other shapes is rewritten, not reused.
        var logged = new List<string>();
        HybridServing.Hosting.Samples.SampleAdapters.EnsureGenerated(dir.Path, "test/tiny", logged.Add);
        Assert.Empty(logged); // test/tiny shapes already: valid for a test/tiny engine on either backend
        HybridServing.Contracts.Peft.PeftAdapterWriter.Write(Path.Combine(root, "sql-lora"), HybridServing.Contracts.Peft.BaseModelShape.For("test/tiny") with { Name = "other" }, 16, ["q_proj"]);
        HybridServing.Hosting.Samples.SampleAdapters.EnsureGenerated(dir.Path, EnginePoolOptions.DefaultBaseModel, logged.Add, onnxBackend: true);
        Assert.Equal(["sql-lora"], logged.Select(l => l.Split(' ')[3]));
    }

    [Fact]
    public void Aspire_switches_and_configuration_pass_through_to_aspire()
    {
        var o = AppHostOptions.Parse(["--engines", "2", "--Parameters:dev-api-key=secret", "--operation", "run", "--engine-arg=--mock-time-scale", "--engine-arg=4"]);
        Assert.Equal(2, o.Engines);
        Assert.Equal(["--Parameters:dev-api-key=secret", "--operation", "run"], o.AspireArgs);
        Assert.Equal(["--mock-time-scale", "4"], o.EngineArgs);
    }

    [Fact]
    public void Publish_runs_aspires_publish_step_into_the_output_folder()
    {
        var o = AppHostOptions.Parse(["publish", "--output", "out", "--engine-replicas", "4"]);
        Assert.NotNull(o.Publish);
        Assert.Equal(4, o.Publish.EnginePool.Replicas);
        Assert.Equal(["--operation", "publish", "--step", "publish", "--output-path", Path.GetFullPath("out", Environment.GetEnvironmentVariable("PWD") ?? Environment.CurrentDirectory), "--clear-cache", "true"], o.AspireArgs);
    }

    [Theory]
    [InlineData(new[] { "--gateway-port", "70000" }, "--gateway-port")]
    [InlineData(new[] { "--gateway-port", "abc" }, "--gateway-port")]
    [InlineData(new[] { "--engines", "0" }, "--engines")]
    [InlineData(new[] { "--manifests" }, "--manifests")]
    [InlineData(new[] { "--bogus" }, "--bogus")]
    [InlineData(new[] { "--max-loras", "8", "--max-cpu-loras", "4" }, "--max-cpu-loras")]
    public void Wrong_values_name_the_offending_flag(string[] args, string flag)
    {
        var e = Assert.Throws<AppHostOptionsException>(() => AppHostOptions.Parse(args));
        Assert.Equal(flag, e.Flag);
        Assert.StartsWith(flag, e.Message);
    }
}
