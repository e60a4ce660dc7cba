using System.Runtime.InteropServices;
using HybridServing.AppHost;
using HybridServing.AppHost.Orchestration;
using HybridServing.AppHost.Publishing;

if (args is ["publish", .. var publishArgs])
{
    if (publishArgs is ["--help"] or ["-h"])
    {
        Console.WriteLine(PublishOptions.Usage);
        return 0;
    }
    try
    {
        KubernetesManifests.Write(PublishOptions.Parse(publishArgs), Console.WriteLine);
        return 0;
    }
    catch (AppHostOptionsException e)
    {
        Console.Error.WriteLine($"error: {e.Message}");
        return 2;
    }
}

AppHostOptions options;
try
{
    options = AppHostOptions.Parse(args);
}
catch (AppHostOptionsException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine(AppHostOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(AppHostOptions.Usage);
    return 0;
}

using var stopping = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stopping.Cancel(); };
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stopping.Cancel(); });

var console = new ConsoleLog();
LocalStack? stack = null;
try
{
    console.Info($"starting {options.Engines} engines, {options.Engines} sidecars, the control plane and the gateway");
    stack = await LocalStack.StartAsync(options, console.Line, stopping.Token);
    console.PrintResources(stack);
    await stack.WatchAsync(stopping.Token);
    return 0;
}
catch (OperationCanceledException) when (stopping.IsCancellationRequested)
{
    console.Info("stopping");
    return 0;
}
catch (ResourceFailedException e)
{
    console.Failure(e);
    return 1;
}
catch (Exception e) when (e is AppHostOptionsException or FileNotFoundException or InvalidOperationException or ArgumentException)
{
    console.Error(e.Message);
    return 1;
}
finally
{
    if (stack is not null) await stack.DisposeAsync();
}
