using System.Diagnostics;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests;

/// <summary>The real executable, the way the AppHost and a pod start it.</summary>
public sealed class ProgramProcessTests
{
    private static async Task<(int ExitCode, string Output)> RunSidecarAsync(TimeSpan timeout, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "HybridServing.EngineSidecar.dll");
        var start = new ProcessStartInfo("dotnet", [dll, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["Logging__Console__FormatterName"] = "simple";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The sidecar did not exit within {timeout}: {await stdout}{await stderr}");
        }
        return (process.ExitCode, await stdout + await stderr);
    }

    [Fact]
    public async Task Exits_non_zero_when_the_engine_never_becomes_healthy_within_the_timeout()
    {
        using var dir = new TempDirectory("proc");
        var (code, output) = await RunSidecarAsync(TimeSpan.FromSeconds(30),
            "--Sidecar:EngineUrl=http://127.0.0.1:" + Ports.GetFree(), "--Sidecar:CacheDirectory=" + dir.Path,
            "--health-check-timeout", "1", "--health-check-interval", "0.2",
            "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:" + Ports.GetFree(),
            "--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:" + Ports.GetFree(), "--Kestrel:Endpoints:Grpc:Protocols=Http2");
        Assert.Equal(1, code);
        Assert.Contains("did not become healthy within 1 s", output);
    }

    [Fact]
    public async Task Refuses_to_start_without_an_engine_url_and_says_which_key()
    {
        var (code, output) = await RunSidecarAsync(TimeSpan.FromSeconds(30), "--urls=http://127.0.0.1:" + Ports.GetFree());
        Assert.NotEqual(0, code);
        Assert.Contains("Sidecar:EngineUrl is required", output);
    }

    [Fact]
    public async Task Seed_002_deployment_flags_alone_start_file_mode_on_the_default_config_path()
    {
        // The seed's Deployment passes only its own flags (no Sidecar:Mode, no engine URL): file mode,
        // /config/configmap.yaml, the engine the file names (here absent: localhost:8000, not answering).
        using var dir = new TempDirectory("proc2");
        var (code, output) = await RunSidecarAsync(TimeSpan.FromSeconds(30),
            "--health-check-timeout", "1", "--health-check-interval", "0.2", "--reconcile-trigger", "10",
            "--Sidecar:CacheDirectory=" + dir.Path, "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:" + Ports.GetFree());
        Assert.DoesNotContain("Sidecar:EngineUrl is required", output);
        Assert.Contains("/config/configmap.yaml", output);
        Assert.Contains("Engine at http://localhost:8000/ did not become healthy within 1 s", output);
        Assert.Equal(1, code);
    }
}
