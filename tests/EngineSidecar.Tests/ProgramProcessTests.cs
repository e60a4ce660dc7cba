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
    public async Task Lora_syncer_deployment_flags_alone_start_file_mode_on_the_default_config_path()
    {
        // The lora-syncer's Deployment passes only its own flags (no Sidecar:Mode, no engine URL): file mode,
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

    [Fact]
    public async Task Lora_syncer_file_with_a_non_default_port_and_a_relative_config_path_loads_through_a_real_MockEngine()
    {
        // A reported case: the lora-syncer's command line, a config naming another port, local adapter paths.
        using var dir = new TempDirectory("proc3");
        const string baseModel = "meta-llama/Llama-3.1-8B-Instruct";
        var adapters = dir.Combine("adapters");
        var food = TestAdapters.Write(adapters, "food", rank: 8, baseModel);
        await using var engine = await MockEngineHost.StartAsync("--model", baseModel, "--enable-lora", "--max-loras", "4");
        File.WriteAllText(dir.Combine("lora.yaml"), $"""
            vLLMLoRAConfig:
              name: vllm-llama3-8b
              port: {engine.Port}
              defaultBaseModel: {baseModel}
              ensureExist:
                models:
                - id: food-review-1
                  source: {food}
            """);
        var dll = Path.Combine(AppContext.BaseDirectory, "HybridServing.EngineSidecar.dll");
        var start = new ProcessStartInfo("dotnet", [dll, "--config", "lora.yaml", "--reconcile-trigger", "2", "--health-check-interval", "1",
            "--health-check-timeout", "60", "--Sidecar:AllowedLocalRoots:0=" + adapters, "--Sidecar:CacheDirectory=" + dir.Combine("cache"),
            "--Kestrel:Endpoints:Http:Url=http://127.0.0.1:" + Ports.GetFree()])
        { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir.Path };
        using var process = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var sw = Stopwatch.StartNew();
            while (!engine.Inspector.Snapshot().LoadedAdapters.Contains("food-review-1"))
            {
                if (sw.Elapsed > TimeSpan.FromSeconds(30) || process.HasExited)
                    Assert.Fail($"food-review-1 was not loaded on the engine at port {engine.Port}: {output}");
                await Task.Delay(100);
            }
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }
}
