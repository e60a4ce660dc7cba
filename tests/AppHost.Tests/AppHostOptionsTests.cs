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
