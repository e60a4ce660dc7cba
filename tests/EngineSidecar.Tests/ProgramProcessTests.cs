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
}
