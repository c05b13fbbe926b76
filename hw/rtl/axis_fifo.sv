// AXI-Stream FIFO between two layers of the stitched design.
//
// DEPTH entries in a circular buffer with registered output. Decouples the
// layers' ready/valid timing (the layer pipelines stall globally, so a chain
// without FIFOs would be one long combinational ready path) and absorbs bursts
// such as a sliding-window generator's row start.
module axis_fifo #(
    parameter int WIDTH = 8,
    parameter int DEPTH = 2
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic [WIDTH-1:0] in_tdata,
    input  logic             in_tvalid,
    output logic             in_tready,
    output logic [WIDTH-1:0] out_tdata,
    output logic             out_tvalid,
    input  logic             out_tready
);
    localparam int AW = $clog2(DEPTH > 1 ? DEPTH : 2);

    logic [WIDTH-1:0] mem [DEPTH];
    logic [AW-1:0]    wp, rp;
    logic [AW:0]      count;
    logic             push, pop;

    assign in_tready  = count != (AW+1)'(DEPTH);
    assign out_tvalid = count != 0;
    assign out_tdata  = mem[rp];
    assign push = in_tvalid && in_tready;
    assign pop  = out_tvalid && out_tready;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            wp <= '0; rp <= '0; count <= '0;
        end else begin
            if (push) wp <= (wp == AW'(DEPTH - 1)) ? '0 : wp + 1'b1;
            if (pop)  rp <= (rp == AW'(DEPTH - 1)) ? '0 : rp + 1'b1;
            count <= count + (AW+1)'(push) - (AW+1)'(pop);
        end
        if (push) mem[wp] <= in_tdata;
    end
endmodule
