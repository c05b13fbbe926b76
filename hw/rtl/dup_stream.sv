// FINN's DuplicateStreams: every input beat to each of N_OUT outputs.
//
// A registered beat per output with its own valid, so the branches drain
// independently; a new beat enters once every output has taken the previous one.
module dup_stream #(
    parameter int WIDTH = 8,
    parameter int N_OUT = 2
) (
    input  logic                   clk,
    input  logic                   rst_n,
    input  logic [WIDTH-1:0]       in_tdata,
    input  logic                   in_tvalid,
    output logic                   in_tready,
    output logic [WIDTH-1:0]       out_tdata,
    output logic [N_OUT-1:0]       out_tvalid,
    input  logic [N_OUT-1:0]       out_tready
);
    logic fire;
    assign in_tready = &(~out_tvalid | out_tready);
    assign fire = in_tvalid && in_tready;
    always_ff @(posedge clk) begin
        if (!rst_n) out_tvalid <= '0;
        else out_tvalid <= fire ? '1 : out_tvalid & ~out_tready;
        if (fire) out_tdata <= in_tdata;
    end
endmodule
