using System.Diagnostics;

namespace HybridServing.MockEngine.Tests;

/// <summary>The real executable: what `dotnet run --project MockEngine -- ...` does with a bad command line.</summary>
public sealed class ProcessTests
{
    private static async Task<(int ExitCode, string Stdout, string Stderr)> Run(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "HybridServing.MockEngine.dll");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["VLLM_API_KEY"] = "";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try { await process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw; }
        return (process.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task Invalid_combination_exits_2_with_vllms_message()
    {
        var (code, _, stderr) = await Run("--model", "meta-llama/Llama-3.1-8B-Instruct", "--enable-lora", "--max-loras", "4", "--max-cpu-loras", "2");
        Assert.Equal(2, code);
        Assert.Contains("max_cpu_loras (2) must be >= max_loras (4)", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unloadable_lora_module_exits_1_naming_it()
    {
        var (code, _, stderr) = await Run("--model", "test/tiny", "--enable-lora", "--host", "127.0.0.1", "--port", "0",
            "--lora-modules", "broken=/definitely/not/here");
        Assert.Equal(1, code);
        Assert.Contains("--lora-modules broken=/definitely/not/here", stderr, StringComparison.Ordinal);
        Assert.Contains("No adapter found for /definitely/not/here", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_port_in_use_exits_3_with_one_line_naming_it_and_the_flag()
    {
        var port = HybridServing.TestKit.Ports.GetFree();
        using var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
        holder.Start();
        var (code, stdout, stderr) = await Run("--model", "test/tiny", "--host", "127.0.0.1", "--port", port.ToString());
        Assert.Equal(3, code);
        Assert.Equal($"error: port {port} is in use on 127.0.0.1: stop what holds it (e.g. the local stack: `dotnet run --project AppHost` takes 8000-8002, 8010-8012, 8020-8022, 8080-8083) or choose another with --port N",
            stderr.TrimEnd());
        Assert.Equal("", stdout);
    }

    [Fact]
    public async Task Help_lists_vllm_and_mock_flags()
    {
        var (code, stdout, _) = await Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("--max-cpu-loras", stdout, StringComparison.Ordinal);
        Assert.Contains("--mock-time-scale", stdout, StringComparison.Ordinal);
    }
}
