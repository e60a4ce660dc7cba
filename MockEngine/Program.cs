using HybridServing.ServiceDefaults;
using HybridServing.MockEngine;

if (MockEngineCommandLine.WantsHelp(args))
{
    Console.WriteLine(MockEngineCommandLine.Usage);
    return 0;
}

MockEngineOptions options;
try
{
    options = MockEngineCommandLine.Parse(args, Environment.GetEnvironmentVariable);
}
catch (MockEngineOptionsException e)
{
    // argparse's convention: usage errors print to stderr and exit 2.
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

// The port first: one held (the local stack's engine-0 on 8000) is one line naming it, not a stack trace.
var listen = new ListenPorts.Listen(options.Host, options.Port, "--port N");
if (ListenPorts.Problem([listen]) is { } portProblem)
{
    Console.Error.WriteLine($"error: {portProblem}");
    return ListenPorts.InUseExitCode;
}

// vLLM's flags are not configuration keys, so they are not handed to the host builder.
var builder = WebApplication.CreateBuilder();
builder.AddServiceDefaults();
builder.AddMockEngine(options);
var app = builder.Build();
try
{
    app.MapMockEngine();
}
catch (MockEngineStartupException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
var exitCode = app.ExitCode();
var runCode = app.RunChecked([listen]);
return runCode != 0 ? runCode : exitCode();
