using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Reconciliation;
using HybridServing.EngineSidecar.RolloutFile;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.RolloutFile;

public sealed class LoraSyncerCommandLineTests
{
    [Fact]
    public void Seed_flags_become_sidecar_keys()
    {
        var args = LoraSyncerCommandLine.Normalize(["--health-check-timeout", "600", "--config-validation", "--health-check-interval=5",
            "--reconcile-trigger", "10", "--config", "/cfg/x.yaml", "--metrics-port", "9090", "--Sidecar:PodName=p"]);
        Assert.Equal([
            "--Sidecar:EngineHealthTimeoutSeconds=600", "--Sidecar:ConfigValidation=True", "--Sidecar:EngineHealthIntervalSeconds=5",
            "--Sidecar:ReconcileIntervalSeconds=10", "--Sidecar:ConfigFile=/cfg/x.yaml", "--Kestrel:Endpoints:Http:Url=http://0.0.0.0:9090", "--Sidecar:PodName=p",
            "--Sidecar:LoraSyncerFlags=true",
        ], args);
        Assert.Equal(["--Sidecar:ConfigValidation=False", "--Sidecar:LoraSyncerFlags=true"], LoraSyncerCommandLine.Normalize(["--config-validation", "false"]));
        Assert.Equal(["--Sidecar:PodName=p"], LoraSyncerCommandLine.Normalize(["--Sidecar:PodName=p"]));
    }

    [Theory]
    [InlineData("--reconcile-trigger", "soon", "positive number")]
    [InlineData("--health-check-timeout", "-1", "positive number")]
    [InlineData("--config-validation=maybe", null, "true or false")]
    [InlineData("--config", null, "needs a value")]
    public void Bad_seed_flags_are_refused(string flag, string? value, string expected)
    {
        string[] args = value is null ? [flag] : [flag, value];
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => LoraSyncerCommandLine.Normalize(args)).Message);
    }

    [Fact]
    public void Options_validation_names_the_key_to_fix()
    {
        var problems = new SidecarOptions
        {
            EngineUrl = "not a url", EngineKind = "tgi", MaxLoras = 4, MaxCpuLoras = 2, ReconcileIntervalSeconds = 0,
            AllowedLocalRoots = ["relative/root"],
        }.Validate().ToList();
        Assert.Contains(problems, p => p.Contains("Sidecar:EngineUrl 'not a url'"));
        Assert.Contains(problems, p => p.Contains("Sidecar:EngineKind 'tgi'"));
        Assert.Contains(problems, p => p.Contains("Sidecar:MaxCpuLoras (2) must be >= Sidecar:MaxLoras (4)"));
        Assert.Contains(problems, p => p.Contains("Sidecar:ReconcileIntervalSeconds"));
        Assert.Contains(problems, p => p.Contains("'relative/root' must be an absolute path"));
        Assert.Contains("Sidecar:EngineUrl is required", Assert.Single(new SidecarOptions().Validate()));
        Assert.Empty(new SidecarOptions { Mode = "file" }.Validate());
        Assert.Contains("must be an absolute path", Assert.Single(new SidecarOptions { EngineUrl = "http://e:1", CacheDirectory = "rel/cache" }.Validate()));
    }

    [Fact]
    public void Sidecars_without_a_cache_directory_get_one_of_their_own()
    {
        var a = new SidecarOptions { EngineUrl = "http://127.0.0.1:8001" }.EffectiveCacheDirectory;
        var b = new SidecarOptions { EngineUrl = "http://127.0.0.1:8002" }.EffectiveCacheDirectory;
        var pod = new SidecarOptions { EngineUrl = "http://127.0.0.1:8002", PodName = "vllm-0/../x" }.EffectiveCacheDirectory;
        Assert.NotEqual(a, b);
        Assert.EndsWith("127.0.0.1_8001", a);
        Assert.EndsWith("vllm-0_.._x", pod);
        Assert.Equal(Path.Combine(Path.GetTempPath(), "hybridserving-sidecar-cache"), Path.GetDirectoryName(pod));
        Assert.Equal("/c", new SidecarOptions { CacheDirectory = "/c" }.EffectiveCacheDirectory);
    }
}
